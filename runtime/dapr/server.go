package dapr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/daprfn/shop/runtime"
)

// Protocol is the app protocol between daprd and the app.
type Protocol string

const (
	// HTTP is --app-protocol http.
	HTTP Protocol = "http"
	// GRPC is --app-protocol grpc.
	GRPC Protocol = "grpc"
)

// Sidecar is what the server asks the sidecar at start: the components it
// has loaded, as "kind/name" (e.g. "state/statestore"). bindings/dapr's
// Client implements it.
type Sidecar interface {
	LoadedComponents(ctx context.Context) ([]runtime.Component, error)
}

// ServerConfig configures a Server.
type ServerConfig struct {
	Protocol        Protocol
	Address         string        // e.g. ":3000"
	HealthAddress   string        // extra HTTP /healthz /readyz listener for the gRPC protocol; "" for none
	AppToken        string        // APP_API_TOKEN
	MaxBody         int64         // bytes
	ShutdownTimeout time.Duration // how long in-flight work may drain
	SidecarTimeout  time.Duration // how long to wait for the sidecar's metadata at start
	ResourcesHint   string        // where components are loaded from, for error messages
}

// Server serves an App over one protocol with readiness and graceful drain.
type Server struct {
	app     *runtime.App
	cfg     ServerConfig
	sidecar Sidecar
	log     *slog.Logger
	ready   atomic.Bool
	onReady []func(context.Context) error
}

// OnReady adds f to run once the sidecar check passed and before the server
// reports ready; an error from f stops the server with it. Use it for
// start-up work that needs the sidecar (schema creation, component checks).
func (s *Server) OnReady(f func(ctx context.Context) error) { s.onReady = append(s.onReady, f) }

// NewServer checks app and cfg and returns a Server. sidecar may be nil to
// skip the component check (tests that drive the app without daprd).
func NewServer(app *runtime.App, cfg ServerConfig, sidecar Sidecar) (*Server, error) {
	if err := app.Err(); err != nil {
		return nil, fmt.Errorf("app registration: %w", err)
	}
	if cfg.Protocol != HTTP && cfg.Protocol != GRPC {
		return nil, fmt.Errorf("app protocol %q: want http or grpc (APP_PROTOCOL)", cfg.Protocol)
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 20 * time.Second
	}
	if cfg.SidecarTimeout <= 0 {
		cfg.SidecarTimeout = 60 * time.Second
	}
	return &Server{app: app, cfg: cfg, sidecar: sidecar, log: app.Logger()}, nil
}

// Ready reports whether the sidecar check passed and the server is not draining.
func (s *Server) Ready() bool { return s.ready.Load() }

// Run opens the app port, checks the sidecar's components (the app port must
// be open first: daprd's own readiness waits for it), serves until ctx is
// done, then stops accepting, drains in-flight deliveries and returns nil.
// A missing component ends Run with an error naming it.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Address)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is APP_PORT taken?)", s.cfg.Address, err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	serveErr := make(chan error, 2)
	var stop []func(context.Context) error
	httpOpts := HTTPOptions{AppToken: s.cfg.AppToken, MaxBody: s.cfg.MaxBody, Ready: s.Ready}
	switch s.cfg.Protocol {
	case HTTP:
		srv := &http.Server{Handler: NewHTTPHandler(s.app, httpOpts), ReadHeaderTimeout: 10 * time.Second}
		go func() { serveErr <- ignoreClosed(srv.Serve(ln)) }()
		stop = append(stop, srv.Shutdown)
	case GRPC:
		gs := NewGRPCServer(s.app, s.cfg.AppToken)
		go func() { serveErr <- gs.Serve(ln) }()
		stop = append(stop, func(ctx context.Context) error {
			done := make(chan struct{})
			go func() { gs.GracefulStop(); close(done) }()
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				gs.Stop()
				return ctx.Err()
			}
		})
		if s.cfg.HealthAddress != "" {
			hln, err := net.Listen("tcp", s.cfg.HealthAddress)
			if err != nil {
				gs.Stop()
				return fmt.Errorf("listen on %s for health probes: %w (HEALTH_PORT)", s.cfg.HealthAddress, err)
			}
			hs := &http.Server{Handler: healthOnly(NewHTTPHandler(s.app, httpOpts)), ReadHeaderTimeout: 5 * time.Second}
			go func() { serveErr <- ignoreClosed(hs.Serve(hln)) }()
			stop = append(stop, hs.Shutdown)
		}
	}
	s.log.Info("app listening", "address", ln.Addr().String(), "protocol", string(s.cfg.Protocol),
		"subscriptions", len(s.app.Subscriptions()), "bindings", s.app.Bindings())

	go func() {
		if err := s.checkSidecar(ctx); err != nil {
			cancel(err)
			return
		}
		for _, f := range s.onReady {
			if err := f(ctx); err != nil {
				cancel(err)
				return
			}
		}
		s.ready.Store(true)
		s.log.Info("ready: sidecar has every component the functions need", "components", componentNames(s.app.Components()))
	}()

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if err != nil {
			return fmt.Errorf("serving: %w", err)
		}
	}
	s.ready.Store(false)
	cause := context.Cause(ctx)
	s.log.Info("shutting down: draining in-flight deliveries", "timeout", s.cfg.ShutdownTimeout)
	drainCtx, done := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer done()
	var errs []error
	for _, f := range stop {
		errs = append(errs, f(drainCtx))
	}
	if cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return errors.Join(errs...)
}

// checkSidecar waits for the sidecar's metadata and checks that every
// component the App requires is loaded.
func (s *Server) checkSidecar(ctx context.Context) error {
	if s.sidecar == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.SidecarTimeout)
	defer cancel()
	var loaded []runtime.Component
	var err error
	for {
		loaded, err = s.sidecar.LoadedComponents(ctx)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sidecar metadata not reachable within %s: %w (is daprd running with DAPR_GRPC_PORT/DAPR_HTTP_PORT as configured?)", s.cfg.SidecarTimeout, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
	return MissingComponents(s.app.Components(), loaded, s.cfg.ResourcesHint)
}

// MissingComponents returns an error naming every required component that
// is not loaded, and where components are loaded from.
func MissingComponents(required, loaded []runtime.Component, resourcesHint string) error {
	var missing []string
	for _, c := range required {
		if !slices.ContainsFunc(loaded, c.Is) {
			missing = append(missing, c.String())
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if resourcesHint == "" {
		resourcesHint = "the daprd --resources-path directory"
	}
	return fmt.Errorf("components %s not found in sidecar metadata (loaded: %s): add them, with this app-id in their scopes, to %s",
		strings.Join(missing, ", "), strings.Join(componentNames(loaded), ", "), resourcesHint)
}

func componentNames(cs []runtime.Component) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.String()
	}
	return out
}

func healthOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" && r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
