// Package host is the main of a function app: one call reads the standard
// environment (app port and protocol, sidecar address, tokens, logging),
// dials the sidecar, lets the caller register its functions, serves them to
// daprd and drains on SIGTERM.
//
//	func main() {
//		host.Main(func(h *host.Host) error {
//			runtime.Invoke(h.App, "POST /quote", quote.Answer)
//			return nil
//		})
//	}
//
// The launcher (bin/shop run -f dapr.yaml), a dapr multi-app run file and
// the Kubernetes manifests set the environment Env reads. The shop's own
// bin/shop serve runs through Run too.
package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/daprfn/shop/bindings/dapr"
	"github.com/daprfn/shop/runtime"
	daprrt "github.com/daprfn/shop/runtime/dapr"
	"github.com/daprfn/shop/runtime/metrics"
)

// Env is the standard environment of a function app. Every field has a
// variable; `shop env` lists them with the shop's own.
type Env struct {
	AppID         string `envconfig:"APP_ID" desc:"this app's Dapr app-id (required; the launcher and the manifests set it)"`
	AppPort       int    `envconfig:"APP_PORT" default:"3000" desc:"port daprd calls the app on (--app-port)"`
	AppProtocol   string `envconfig:"APP_PROTOCOL" default:"http" desc:"app protocol between daprd and app: http or grpc (--app-protocol)"`
	HealthPort    int    `envconfig:"HEALTH_PORT" default:"0" desc:"extra HTTP port for /healthz and /readyz when APP_PROTOCOL=grpc; 0 for none"`
	ListenAddress string `envconfig:"LISTEN_ADDRESS" default:"127.0.0.1" desc:"address the app port and HEALTH_PORT listen on; 127.0.0.1 keeps the app reachable only from its own host (its sidecar); 0.0.0.0 when something on another address must reach it, e.g. a kubelet's probes of HEALTH_PORT"`

	DaprHost       string   `envconfig:"DAPR_HOST" default:"127.0.0.1" desc:"host of the sidecar's APIs"`
	DaprGRPCPort   int      `envconfig:"DAPR_GRPC_PORT" default:"50001" desc:"sidecar gRPC API port the app calls out through"`
	DaprHTTPPort   int      `envconfig:"DAPR_HTTP_PORT" default:"3500" desc:"sidecar HTTP API port, for invocations whose error answers people read (the storefront's): over gRPC daprd cuts an invoked app's error answer to 63 bytes"`
	DaprAPIToken   string   `envconfig:"DAPR_API_TOKEN" desc:"sent as dapr-api-token on every call to the sidecar when set"`
	AppAPIToken    string   `envconfig:"APP_API_TOKEN" desc:"required from the sidecar on every call to the app when set (health probes exempt, and over gRPC the subscription and binding listings, which daprd sends without it)"`
	InternalAppIDs []string `envconfig:"INTERNAL_APP_IDS" desc:"the app-ids of the deployment's own apps, comma-separated: the only apps INTERNAL_TOKEN is sent to (the launcher sets every app-id of its run file; the manifests list the shop's)"`
	InternalToken  string   `envconfig:"INTERNAL_TOKEN" desc:"credential every app of one deployment shares: sent on every service invocation and required by internal routes (JSON 403 without it), and the key order events are signed with; the launcher draws one per run, Kubernetes reads it from the internal-token secret; when empty, internal routes refuse every call and order events go unsigned"`

	MetricsPort     int           `envconfig:"METRICS_PORT" default:"0" desc:"port of the app's own Prometheus metrics (GET /metrics on LISTEN_ADDRESS): deliveries of every route, topic and binding by outcome, and their latency; the same counters as JSON to the deployment's functions by invocation (internal route GET /runtime/metrics); 0 for none (the launcher gives each app its own)"`
	PprofAddr       string        `envconfig:"PPROF_ADDR" desc:"address for net/http/pprof profiles (e.g. 127.0.0.1:6060); off when empty"`
	LogLevel        string        `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	LogFormat       string        `envconfig:"LOG_FORMAT" default:"text" desc:"log format (slog): text or json"`
	MaxBodyBytes    int           `envconfig:"MAX_BODY_BYTES" default:"1048576" desc:"largest request or event body accepted; a larger one is answered 413 (DROP for events)"`
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"20s" desc:"how long in-flight work may drain on SIGTERM"`
	SidecarTimeout  time.Duration `envconfig:"SIDECAR_TIMEOUT" default:"60s" desc:"how long to wait for the sidecar at start"`
	ResourcesPath   string        `envconfig:"DAPR_RESOURCES_PATH" default:"components/" desc:"where the sidecar loads components from, named in start-up errors about a missing component (the launcher sets it)"`
}

// LoadEnv reads Env from the environment.
func LoadEnv() (Env, error) {
	var e Env
	if err := envconfig.Process("", &e); err != nil {
		return e, fmt.Errorf("configuration: %w", err)
	}
	return e, e.Check()
}

// Check reports what in e cannot run: no APP_ID, or a LOG_LEVEL or
// LOG_FORMAT that is not one of theirs. LoadEnv and Run call it.
func (e Env) Check() error {
	if e.AppID == "" {
		return errors.New("APP_ID is empty: set it to the app's Dapr app-id (the launcher and the manifests do)")
	}
	if _, err := e.Logger(); err != nil {
		return err
	}
	return nil
}

// Logger returns the slog logger LOG_LEVEL and LOG_FORMAT ask for, writing
// to standard error.
func (e Env) Logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(e.LogLevel)); err != nil {
		return nil, fmt.Errorf("LOG_LEVEL %q: want debug, info, warn or error", e.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch e.LogFormat {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("LOG_FORMAT %q: want text or json", e.LogFormat)
}

// Host is what a registration gets: the App to register functions in, the
// sidecar client that serves every port a function calls out through
// (Publisher, OutputBinding, Invoker, Components; for StateStore, name the
// store first: h.Sidecar.WithStateStore("statestore")), the logger and the
// environment.
type Host struct {
	Env     Env
	App     *runtime.App
	Sidecar *dapr.Client
	Log     *slog.Logger

	onReady []func(context.Context) error
	closers []func()
}

// OnReady adds f to run once the sidecar has every component the App
// requires, before the app reports ready (schema creation, checks); an
// error stops the app with it.
func (h *Host) OnReady(f func(context.Context) error) { h.onReady = append(h.onReady, f) }

// OnClose adds f to run after the app stopped serving, in reverse order of
// registration (flush, release).
func (h *Host) OnClose(f func()) { h.closers = append(h.closers, f) }

// Register registers an app's functions in h.
type Register func(h *Host) error

// Main runs the app described by the environment until SIGINT or SIGTERM,
// and exits 1 with the reason if it cannot start or fails.
func Main(register Register) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	env, err := LoadEnv()
	if err == nil {
		err = Run(ctx, env, register)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, os.Args[0]+":", err)
		os.Exit(1)
	}
}

// Run dials the sidecar env names, builds an App with the runtime's default
// middleware, lets register fill it, and serves it until ctx ends; then it
// drains in-flight work for env.ShutdownTimeout and runs the OnClose
// functions. It returns nil after a clean stop.
func Run(ctx context.Context, env Env, register Register) error {
	if err := env.Check(); err != nil {
		return err
	}
	log, _ := env.Logger()
	log = log.With("app", env.AppID)
	if env.PprofAddr != "" {
		go servePprof(env.PprofAddr, log)
	}
	sidecar, err := dapr.New(dapr.Config{
		Address:        net.JoinHostPort(env.DaprHost, strconv.Itoa(env.DaprGRPCPort)),
		APIToken:       env.DaprAPIToken,
		InternalToken:  env.InternalToken,
		InternalAppIDs: env.InternalAppIDs,
	})
	if err != nil {
		return err
	}
	defer sidecar.Close()
	if env.InternalToken == "" {
		log.Warn("INTERNAL_TOKEN is not set: internal routes refuse every call and order events go unsigned")
	}
	middleware := runtime.Defaults(log, env.MaxBodyBytes)
	var reg *prometheus.Registry
	if env.MetricsPort != 0 {
		var labelled prometheus.Registerer
		reg, labelled = metrics.NewRegistry(env.AppID)
		middleware = append([]runtime.Middleware{metrics.Middleware(labelled)}, middleware...)
		stop, err := serveMetrics(net.JoinHostPort(env.ListenAddress, strconv.Itoa(env.MetricsPort)), reg, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	h := &Host{
		Env:     env,
		App:     runtime.New(runtime.Options{Logger: log, Middleware: middleware, InternalToken: env.InternalToken}),
		Sidecar: sidecar,
		Log:     log,
	}
	defer h.close()
	if reg != nil {
		// The same counters as JSON, for the deployment's own functions
		// through their sidecars (the storefront's page).
		runtime.Invoke(h.App, metrics.CountersPattern, metrics.CountersFunc(reg, env.AppID), runtime.Internal)
	}
	if err := register(h); err != nil {
		return err
	}
	srv, err := daprrt.NewServer(h.App, daprrt.ServerConfig{
		Protocol:        daprrt.Protocol(env.AppProtocol),
		Address:         net.JoinHostPort(env.ListenAddress, strconv.Itoa(env.AppPort)),
		HealthAddress:   env.healthAddress(),
		AppToken:        env.AppAPIToken,
		MaxBody:         int64(env.MaxBodyBytes),
		ShutdownTimeout: env.ShutdownTimeout,
		SidecarTimeout:  env.SidecarTimeout,
		ResourcesHint:   env.ResourcesPath,
	}, sidecar)
	if err != nil {
		return err
	}
	for _, f := range h.onReady {
		srv.OnReady(f)
	}
	err = srv.Run(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("stopped")
	return nil
}

func (h *Host) close() {
	for i := len(h.closers) - 1; i >= 0; i-- {
		h.closers[i]()
	}
}

func (e Env) healthAddress() string {
	if e.HealthPort == 0 {
		return ""
	}
	return net.JoinHostPort(e.ListenAddress, strconv.Itoa(e.HealthPort))
}

// serveMetrics serves reg on addr's /metrics until stop is called.
func serveMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics port (METRICS_PORT): %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(reg))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics stopped", "error", err.Error())
		}
	}()
	log.Info("metrics listening", "address", addr, "path", "/metrics")
	return func() { _ = srv.Close() }, nil
}

// servePprof serves the runtime profiles of net/http/pprof, for measuring
// where an app's CPU goes under load (PPROF_ADDR; keep it on loopback).
func servePprof(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	log.Info("pprof listening", "address", addr)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		log.Error("pprof stopped", "error", err.Error())
	}
}
