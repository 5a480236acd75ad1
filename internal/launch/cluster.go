package launch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Cluster is a run of a file with a hosts section: its hosts and every
// process it runs on them. StartCluster starts it, Close stops it and
// removes every namespace, link and process it made. Besides Run, which
// runs it until told to stop, tests use it to break hosts on purpose:
// Kill, Restart, Partition and Heal.
type Cluster struct {
	f   *File
	o   Options
	log *slog.Logger
	out io.Writer

	run         string
	dir         string   // the run's state: sentry's credentials and configuration, Redis's files
	lock        *os.File // held while the run lives
	janitor     *exec.Cmd
	janitorPipe *os.File
	net         *network
	noExporters string
	anchors     string // sentry's root certificate (PEM), every daprd's DAPR_TRUST_ANCHORS

	infra, control *Host
	apps           []*Host
	exited         chan *proc

	mu       sync.Mutex
	extra    []*Host
	units    []*unit
	forwards []net.Listener
	closed   bool
}

type unitKind int

const (
	kindService unitKind = iota // Redis, sentry
	kindDaprd
	kindApp
)

// unit is one process the cluster runs and can start again.
type unit struct {
	name   string
	host   *Host
	kind   unitKind
	oneOff bool // started by StartSidecar: Restart leaves it
	start  func() (*proc, error)
	ready  func(ctx context.Context) error // nil: nothing to wait for
	p      *proc
	log    *lockedBuffer
}

func (u *unit) running() bool {
	if u.p == nil {
		return false
	}
	select {
	case <-u.p.done:
		return false
	default:
		return true
	}
}

// StartCluster creates the hosts of f's hosts section and starts every
// process on them; it returns once every sidecar is healthy. It needs root
// (network namespaces), ip and nsenter, and the binaries o names.
func StartCluster(ctx context.Context, f *File, o Options) (c *Cluster, err error) {
	if f.Hosts == nil {
		return nil, fmt.Errorf("%s has no hosts section", f.path)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the host mode creates network namespaces: run it as root")
	}
	o = o.withDefaults()
	for _, bin := range []struct{ path, make string }{{o.Daprd, "daprd"}, {o.Sentry, "sentry"}} {
		if _, err := os.Stat(bin.path); err != nil {
			return nil, fmt.Errorf("%s not found at %q: run `make %s`", bin.make, bin.path, bin.make)
		}
	}
	for _, tool := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("the host mode needs %s on the PATH (Debian's iproute2 and util-linux)", tool)
		}
	}
	c = &Cluster{f: f, o: o, log: o.Logger, out: &lockedWriter{w: o.Out}, exited: make(chan *proc, 64)}
	if err := c.claim(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if cerr := c.Close(); cerr != nil {
				c.log.Error("tearing the hosts down after a failed start", "err", cerr)
			}
			c = nil
		}
	}()
	if err := c.wire(); err != nil {
		return c, err
	}
	if err := c.startControlPlane(ctx); err != nil {
		return c, err
	}
	for _, h := range c.apps {
		for _, a := range f.Apps {
			c.addApp(h, a)
		}
	}
	var units []*unit
	for _, u := range c.units {
		if u.kind != kindService {
			units = append(units, u)
		}
	}
	if err := c.startUnits(ctx, units); err != nil {
		return c, err
	}
	for _, p := range f.Hosts.Forward {
		if err := c.forward(p, c.apps[0]); err != nil {
			c.log.Warn("port not forwarded; curl from the first app host instead", "port", p, "err", err,
				"try", "ip netns exec "+c.apps[0].Namespace+" curl http://localhost:"+strconv.Itoa(p)+"/...")
		}
	}
	c.log.Info("hosts up", "run", c.run, "app_hosts", len(c.apps), "apps_per_host", len(f.Apps))
	return c, nil
}

func (o Options) withDefaults() Options {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.HealthTimeout == 0 {
		o.HealthTimeout = 60 * time.Second
	}
	if o.AppStopTimeout == 0 {
		o.AppStopTimeout = 25 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(o.Out, nil))
	}
	return o
}

// claim removes what stopped runs left behind and takes a run id, its lock
// and its state directory, and starts its janitor.
func (c *Cluster) claim() error {
	if err := os.MkdirAll(StateRoot(), 0o700); err != nil {
		return err
	}
	setup, err := lockFile(filepath.Join(StateRoot(), "setup.lock"), true)
	if err != nil {
		return err
	}
	defer setup.Close()
	if err := cleanStale(c.log); err != nil {
		c.log.Warn("could not remove everything stopped runs left behind", "err", err)
	}
	for c.lock == nil {
		var b [3]byte
		_, _ = rand.Read(b[:])
		c.run = hex.EncodeToString(b[:])
		if ns, _ := namespaces(nsPrefix + c.run + "-"); len(ns) > 0 {
			continue
		}
		if c.lock, err = lockFile(filepath.Join(StateRoot(), c.run+".lock"), false); err != nil {
			return err
		}
	}
	c.dir = filepath.Join(StateRoot(), c.run)
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return err
	}
	c.janitor, c.janitorPipe, err = startJanitor(nsPrefix+c.run+"-", c.dir, c.lock.Name())
	return err
}

// wire creates the bridge and the hosts.
func (c *Cluster) wire() error {
	var err error
	if c.net, err = newNetwork(c.run); err != nil {
		return err
	}
	add := func(name string, addr netip.Addr) (*Host, error) {
		ns, err := c.net.addHost(name, addr)
		return &Host{Name: name, Namespace: ns, Addr: addr}, err
	}
	if c.infra, err = add("infra", infraAddr); err != nil {
		return err
	}
	if c.control, err = add("control", controlAddr); err != nil {
		return err
	}
	for i := 1; i <= c.f.Hosts.AppHosts; i++ {
		h, err := add("app"+strconv.Itoa(i), appHostAddr(i))
		if err != nil {
			return err
		}
		c.apps = append(c.apps, h)
	}
	c.noExporters = filepath.Join(c.dir, "no-exporters.yaml")
	return os.WriteFile(c.noExporters, []byte(NoExportersConfig), 0o644)
}

// sentryConfig is sentry's own Configuration: mTLS on, certificates for 24
// hours (Dapr's default), renewed by every daprd before they expire.
const sentryConfig = `apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: daprsystem
spec:
  mtls:
    enabled: true
    workloadCertTTL: 24h
    allowedClockSkew: 15m
`

// startControlPlane starts Redis on the infrastructure host (if the file
// asks for it) and sentry on the control-plane host, and reads sentry's
// root certificate once it has written it.
func (c *Cluster) startControlPlane(ctx context.Context) error {
	var units []*unit
	if slices.Contains(c.f.Hosts.Infrastructure, "redis") {
		bin, err := exec.LookPath("redis-server")
		if err != nil {
			return errors.New("redis-server not on the PATH: install Debian's redis-server package")
		}
		dir := filepath.Join(c.dir, "redis")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		addr := net.JoinHostPort(infraAddr.String(), strconv.Itoa(RedisPort))
		// On the bridge only, without a password: protected mode would
		// refuse every other host.
		args := []string{"--bind", infraAddr.String(), "--port", strconv.Itoa(RedisPort), "--protected-mode", "no",
			"--dir", dir, "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--loglevel", "warning"}
		units = append(units, c.add(&unit{name: "infra redis", host: c.infra, kind: kindService,
			start: c.starter(c.infra, "infra redis", dir, bin, args, nil, nil),
			ready: func(ctx context.Context) error { return waitTCP(ctx, c.infra, addr) }}))
	}
	creds := filepath.Join(c.dir, "sentry")
	if err := os.MkdirAll(creds, 0o700); err != nil {
		return err
	}
	config := filepath.Join(c.dir, "sentry.yaml")
	if err := os.WriteFile(config, []byte(sentryConfig), 0o644); err != nil {
		return err
	}
	args := []string{"--issuer-credentials", creds, "--config", config, "--trust-domain", ControlPlaneTrustDomain,
		"--port", strconv.Itoa(SentryPort), "--healthz-port", strconv.Itoa(SentryHealthzPort), "--enable-metrics=false",
		"--log-level", "warn"}
	healthz := "http://" + net.JoinHostPort(controlAddr.String(), strconv.Itoa(SentryHealthzPort)) + "/healthz"
	sentryUp := func(ctx context.Context) error {
		return waitHTTP(ctx, c.control, healthz, func(status int) bool { return status == http.StatusOK })
	}
	// On its first start sentry writes its root and issuer certificates,
	// then sees its own files change and restarts its server once per file,
	// 2 s apart. A first run writes them, so the run's sentry starts on
	// them and serves without a break.
	first := &unit{name: "control sentry (writes its CA)", host: c.control, kind: kindService, ready: sentryUp,
		start: func() (*proc, error) {
			bin, args := inNamespace(c.control.Namespace, c.o.Sentry, args)
			return start("control sentry", c.dir, bin, args, os.Environ(), c.out, nil) // its exit is no news
		}}
	if err := c.startUnits(ctx, []*unit{first}); err != nil {
		if first.p != nil {
			stop([]*proc{first.p}, 10*time.Second)
		}
		return err
	}
	stop([]*proc{first.p}, 10*time.Second)
	units = append(units, c.add(&unit{name: "control sentry", host: c.control, kind: kindService,
		start: c.starter(c.control, "control sentry", c.dir, c.o.Sentry, args, nil, nil), ready: sentryUp}))
	if err := c.startUnits(ctx, units); err != nil {
		return err
	}
	ca, err := os.ReadFile(filepath.Join(creds, "ca.crt"))
	if err != nil {
		return fmt.Errorf("sentry wrote no root certificate: %w", err)
	}
	c.anchors = string(ca)
	return nil
}

// add registers u.
func (c *Cluster) add(u *unit) *unit {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.units = append(c.units, u)
	return u
}

// starter returns a function that starts bin with args in h's namespace,
// its output prefixed with [name], to out (the run's output when nil).
func (c *Cluster) starter(h *Host, name, dir, bin string, args, env []string, out io.Writer) func() (*proc, error) {
	if out == nil {
		out = c.out
	}
	if env == nil {
		env = os.Environ()
	}
	return func() (*proc, error) {
		nsBin, nsArgs := inNamespace(h.Namespace, bin, args)
		return start(name, dir, nsBin, nsArgs, env, out, c.exited)
	}
}

// addApp registers one replica of a on app host h: its daprd and the app.
func (c *Cluster) addApp(h *Host, a App) {
	tokens := c.f.tokens(a) // the replica's app and daprd share them
	name := h.Name + " " + a.AppID
	dir := c.f.abs(a.AppDirPath)
	d := c.add(&unit{name: name + " daprd", host: h, kind: kindDaprd,
		start: c.starter(h, name+" daprd", dir, c.o.Daprd, c.daprdArgs(h, a, true), c.daprdEnv(h, a, tokens, true), nil)})
	health := h.URL(a.DaprHTTPPort, "/v1.0/healthz")
	d.ready = func(ctx context.Context) error {
		return waitHTTP(ctx, h, health, func(status int) bool { return status == http.StatusNoContent })
	}
	bin, args := a.Command[0], a.Command[1:]
	if strings.Contains(bin, "/") && !filepath.IsAbs(bin) {
		bin = filepath.Join(dir, bin)
	}
	c.add(&unit{name: name, host: h, kind: kindApp, start: c.starter(h, name, dir, bin, args, append(c.f.env(a), tokens...), nil)})
}

// daprdArgs is a's daprd command line on host h: its APIs on the host's
// loopback, its internal port (where other sidecars call it) on the host's
// address and, with mtls, its certificate from sentry.
func (c *Cluster) daprdArgs(h *Host, a App, mtls bool) []string {
	args := c.f.daprdArgs(a, c.noExporters)
	for i := range args[:len(args)-1] {
		if args[i] == "--dapr-internal-grpc-listen-address" {
			args[i+1] = h.Addr.String()
		}
	}
	if mtls {
		args = append(args, "--enable-mtls",
			"--sentry-address", net.JoinHostPort(controlAddr.String(), strconv.Itoa(SentryPort)),
			"--control-plane-trust-domain", ControlPlaneTrustDomain)
	}
	return args
}

// daprdEnv is a's daprd's environment on host h: the file's daprdEnv, the
// infrastructure's addresses, the namespace of its identity (default, as
// the access-control policies say), sentry's root certificate with mtls,
// and the replica's tokens.
func (c *Cluster) daprdEnv(h *Host, a App, tokens []string, mtls bool) []string {
	extra := append(c.f.daprdFileEnv(a), "NAMESPACE=default")
	if slices.Contains(c.f.Hosts.Infrastructure, "redis") {
		extra = append(extra, "REDIS_HOST="+net.JoinHostPort(infraAddr.String(), strconv.Itoa(RedisPort)))
	}
	if mtls {
		extra = append(extra, "DAPR_TRUST_ANCHORS="+c.anchors)
	}
	return daprdEnv(c.o.DaprdGOGC, h.Addr.String(), append(extra, tokens...))
}

// startUnits starts units and waits until every one is ready, up to
// HealthTimeout.
func (c *Cluster) startUnits(ctx context.Context, units []*unit) error {
	for _, u := range units {
		p, err := u.start()
		if err != nil {
			return err
		}
		c.mu.Lock()
		u.p = p
		c.mu.Unlock()
		if c.o.Started != nil {
			c.o.Started(u.name, p.cmd.Process.Pid)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.HealthTimeout)
	defer cancel()
	errs := make([]error, len(units))
	var wg sync.WaitGroup
	for i, u := range units {
		if u.ready == nil {
			continue
		}
		wg.Go(func() {
			rctx, stop := context.WithCancel(ctx)
			defer stop()
			go func() { // a process that exits will not become ready
				select {
				case <-u.p.done:
					stop()
				case <-rctx.Done():
				}
			}()
			err := u.ready(rctx)
			switch {
			case err == nil:
			case !u.running():
				errs[i] = fmt.Errorf("%s exited during start-up (%v): see its log above", u.name, u.p.err)
			default:
				errs[i] = fmt.Errorf("%s: not ready within %s: %w", u.name, c.o.HealthTimeout, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitHTTP polls url from h until ok accepts the status.
func waitHTTP(ctx context.Context, h *Host, url string, ok func(status int) bool) error {
	client := h.HTTPClient(2 * time.Second)
	defer client.CloseIdleConnections()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if ok(resp.StatusCode) {
				return nil
			}
			last = fmt.Errorf("%s answers %d", url, resp.StatusCode)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return last
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitTCP waits until address accepts a connection from h.
func waitTCP(ctx context.Context, h *Host, address string) error {
	for {
		conn, err := h.DialContext(ctx, "tcp", address)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// forward serves port on this machine's loopback by connecting each
// client to the same port on h's loopback.
func (c *Cluster) forward(port int, h *Host) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.forwards = append(c.forwards, l)
	c.mu.Unlock()
	target := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				up, err := h.DialContext(ctx, "tcp", target)
				cancel()
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(up, conn); done <- struct{}{} }()
				go func() { _, _ = io.Copy(conn, up); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return nil
}

// Run is the run's id: its namespaces are named shop-<run>-<host>.
func (c *Cluster) Run() string { return c.run }

// Infra is the infrastructure host.
func (c *Cluster) Infra() *Host { return c.infra }

// Control is the control-plane host (sentry).
func (c *Cluster) Control() *Host { return c.control }

// AppHosts are the app hosts, app1 first.
func (c *Cluster) AppHosts() []*Host { return slices.Clone(c.apps) }

// File is the run file the cluster runs.
func (c *Cluster) File() *File { return c.f }

// TrustAnchors is sentry's root certificate, PEM.
func (c *Cluster) TrustAnchors() string { return c.anchors }

// Namespaces lists the network namespaces of the run, the switch's too.
func (c *Cluster) Namespaces() ([]string, error) { return namespaces(nsPrefix + c.run + "-") }

// Kill sends SIGKILL to every process on h, as if the machine lost power,
// and waits until they are gone.
func (c *Cluster) Kill(h *Host) error {
	pids, err := NamespacePIDs(h.Namespace)
	if err != nil {
		return err
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	c.mu.Lock()
	var on []*proc
	for _, u := range c.units {
		if u.host == h && u.p != nil {
			on = append(on, u.p)
		}
	}
	c.mu.Unlock()
	deadline := time.After(10 * time.Second)
	for _, p := range on {
		select {
		case <-p.done:
		case <-deadline:
			return fmt.Errorf("host %s: %s outlived SIGKILL", h.Name, p.name)
		}
	}
	c.log.Info("host killed", "host", h.Name, "processes", len(pids))
	return nil
}

// Restart starts again every process of h that is not running (but not
// the sidecars StartSidecar started) and waits until each is ready.
func (c *Cluster) Restart(ctx context.Context, h *Host) error {
	c.mu.Lock()
	var units []*unit
	for _, u := range c.units {
		if u.host == h && !u.oneOff && !u.running() {
			units = append(units, u)
		}
	}
	c.mu.Unlock()
	if err := c.startUnits(ctx, units); err != nil {
		return err
	}
	c.log.Info("host restarted", "host", h.Name, "processes", len(units))
	return nil
}

// Partition takes h's link to the bridge down: nothing reaches h and h
// reaches nothing but itself; its processes go on running.
func (c *Cluster) Partition(h *Host) error {
	if err := c.net.setPort(h.Name, false); err != nil {
		return err
	}
	c.log.Info("host partitioned", "host", h.Name)
	return nil
}

// Heal brings h's link up again.
func (c *Cluster) Heal(h *Host) error {
	if err := c.net.setPort(h.Name, true); err != nil {
		return err
	}
	c.log.Info("host healed", "host", h.Name)
	return nil
}

// AddHost adds a host to the bridge that runs nothing yet, e.g. a client's
// machine for StartSidecar. name: lower-case letters and digits, at most 15.
func (c *Cluster) AddHost(name string) (*Host, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !hostNamePattern.MatchString(name) {
		return nil, fmt.Errorf("host name %q: lower-case letters and digits, at most 15", name)
	}
	for _, h := range append(append([]*Host{c.infra, c.control}, c.apps...), c.extra...) {
		if h.Name == name {
			return nil, fmt.Errorf("host %s exists", name)
		}
	}
	addr := extraHostAddr(len(c.extra) + 1)
	ns, err := c.net.addHost(name, addr)
	if err != nil {
		return nil, err
	}
	h := &Host{Name: name, Namespace: ns, Addr: addr}
	c.extra = append(c.extra, h)
	return h, nil
}

// Sidecar is a daprd without an app, started on a host with StartSidecar:
// a caller of the apps (a storefront's sidecar, say) or a test's probe.
type Sidecar struct {
	AppID string
	// HTTPPort and GRPCPort are its APIs' ports on the host's loopback,
	// InternalPort its internal port on the host's address: all required,
	// and free on the host.
	HTTPPort, GRPCPort, InternalPort int
	// ResourcesPath is its components directory, which may be empty.
	ResourcesPath string
	// ConfigFilePath is its Configuration, if any.
	ConfigFilePath string
	// NoMTLS starts it without a certificate from sentry.
	NoMTLS bool
}

// Process is a process StartSidecar started.
type Process struct {
	c *Cluster
	u *unit
}

// StartSidecar starts s on h; it does not wait for it to be healthy.
func (c *Cluster) StartSidecar(h *Host, s Sidecar) (*Process, error) {
	if s.HTTPPort == 0 || s.GRPCPort == 0 || s.InternalPort == 0 {
		return nil, fmt.Errorf("sidecar %s on %s: HTTPPort, GRPCPort and InternalPort are required", s.AppID, h.Name)
	}
	if s.ResourcesPath == "" {
		s.ResourcesPath = filepath.Join(c.dir, "empty-"+s.AppID)
		if err := os.MkdirAll(s.ResourcesPath, 0o755); err != nil {
			return nil, err
		}
	}
	a := App{AppID: s.AppID, AppDirPath: c.dir, DaprHTTPPort: s.HTTPPort, DaprGRPCPort: s.GRPCPort, DaprInternalPort: s.InternalPort,
		ResourcesPath: s.ResourcesPath, ConfigFilePath: s.ConfigFilePath}
	name := fmt.Sprintf("%s %s daprd :%d", h.Name, s.AppID, s.HTTPPort)
	if s.NoMTLS {
		name += " without mTLS"
	}
	u := &unit{name: name, host: h, kind: kindDaprd, oneOff: true, log: &lockedBuffer{}}
	u.start = c.starter(h, name, c.dir, c.o.Daprd, c.daprdArgs(h, a, !s.NoMTLS), c.daprdEnv(h, a, nil, !s.NoMTLS), io.MultiWriter(c.out, u.log))
	c.mu.Lock()
	defer c.mu.Unlock()
	p, err := u.start()
	if err != nil {
		return nil, err
	}
	u.p = p
	c.units = append(c.units, u)
	return &Process{c: c, u: u}, nil
}

// Log is what the process printed so far.
func (p *Process) Log() string { return p.u.log.String() }

// Stop sends SIGTERM and waits up to 10 s, then kills it.
func (p *Process) Stop() { stop([]*proc{p.u.p}, 10*time.Second) }

// Exited reports whether the process is gone.
func (p *Process) Exited() bool { return !p.u.running() }

// Close stops every app first (they drain), then the sidecars, then Redis
// and sentry, kills whatever is left on the hosts, deletes every namespace
// of the run and its state, and lets its janitor go.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	forwards, units := c.forwards, slices.Clone(c.units)
	c.mu.Unlock()
	for _, l := range forwards {
		l.Close()
	}
	for _, kind := range []unitKind{kindApp, kindDaprd, kindService} {
		var ps []*proc
		for _, u := range units {
			if u.kind == kind && u.running() {
				ps = append(ps, u.p)
			}
		}
		timeout := 10 * time.Second
		if kind == kindApp {
			timeout = c.o.AppStopTimeout
		}
		stop(ps, timeout)
	}
	var errs []error
	if c.net != nil {
		errs = append(errs, c.net.remove())
	}
	errs = append(errs, os.RemoveAll(c.dir))
	if c.lock != nil {
		os.Remove(c.lock.Name())
		c.lock.Close()
	}
	if c.janitor != nil {
		c.janitorPipe.Close()
		done := make(chan error, 1)
		go func() { done <- c.janitor.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			errs = append(errs, errors.New("the host mode's janitor did not finish within 20s"))
		}
	}
	c.log.Info("hosts removed", "run", c.run)
	return errors.Join(errs...)
}

// runHosts is Run for a file with a hosts section.
func runHosts(ctx context.Context, f *File, o Options) error {
	c, err := StartCluster(ctx, f, o)
	if err != nil {
		return err
	}
	if o.HostsReady != nil {
		o.HostsReady(c)
	}
	var failed error
	select {
	case <-ctx.Done():
	case p := <-c.exited:
		failed = fmt.Errorf("%s exited on its own: %v", p.name, p.err)
	}
	fmt.Fprintln(c.out, "stopping: apps first (they drain), then their sidecars, then the hosts")
	return errors.Join(failed, c.Close())
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
