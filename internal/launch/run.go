package launch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"
)

// Options configure Run.
type Options struct {
	Daprd          string        // daprd binary
	Out            io.Writer     // where prefixed logs go
	HealthTimeout  time.Duration // how long every sidecar may take to be healthy (60 s)
	AppStopTimeout time.Duration // how long apps may drain after SIGTERM (25 s)
	// Ready is called once every sidecar is healthy, e.g. to print endpoints.
	Ready func(f *File)
	// Started, when set, is told each process's name and pid (benchmarks
	// read their CPU time and memory from /proc).
	Started func(name string, pid int)
	// DaprdGOGC is every daprd's GOGC; "" means DefaultDaprdGOGC. The
	// launcher's own GOGC, if any, goes to the apps, not to daprd.
	DaprdGOGC string

	// Sentry is the sentry binary, for files with a hosts section.
	Sentry string
	// Logger gets the launcher's own events in the host mode (hosts up,
	// killed, partitioned, removed); nil logs text to Out.
	Logger *slog.Logger
	// HostsReady, for files with a hosts section, is called once every
	// sidecar on every host is healthy, e.g. to print the endpoints.
	HostsReady func(c *Cluster)
}

// DefaultDaprdGOGC is the GC target the launcher gives daprd: under load a
// daprd at Go's default of 100 spends 10-15 % of its CPU marking garbage;
// at 200 it spends about half that for ~15 MB more RSS (bench/changes.md:
// 13-24 % less daprd CPU per order, each daprd ~135 MB).
const DefaultDaprdGOGC = "200"

// daprdEnv is a daprd's environment: the launcher's, with GOGC set to gogc
// (DefaultDaprdGOGC when empty), extra (the file's daprdEnv and the app's
// tokens, as KEY=VALUE) and, when the daprd
// listens on one address, DAPR_HOST_IP set to it: the address daprd
// announces to name resolution, so other sidecars reach its internal port
// where it listens.
func daprdEnv(gogc, hostIP string, extra []string) []string {
	if gogc == "" {
		gogc = DefaultDaprdGOGC
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "GOGC=") || strings.HasPrefix(kv, "DAPR_HOST_IP=")
	})
	env = append(env, "GOGC="+gogc)
	if !wildcard(hostIP) {
		env = append(env, "DAPR_HOST_IP="+hostIP)
	}
	return append(env, extra...)
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Run starts every app of f with its daprd, waits until all are healthy and
// runs until ctx ends or a process exits on its own; then it stops the apps
// first, then the sidecars. It returns an error if a process failed. A file
// with a hosts section runs across hosts (see Hosts and StartCluster).
func Run(ctx context.Context, f *File, o Options) error {
	if f.Hosts != nil {
		return runHosts(ctx, f, o)
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.HealthTimeout == 0 {
		o.HealthTimeout = 60 * time.Second
	}
	if o.AppStopTimeout == 0 {
		o.AppStopTimeout = 25 * time.Second
	}
	if _, err := os.Stat(o.Daprd); err != nil {
		return fmt.Errorf("daprd not found at %s: run `make daprd`", o.Daprd)
	}
	out := &lockedWriter{w: o.Out}
	noExporters, err := writeNoExportersConfig()
	if err != nil {
		return err
	}
	defer os.Remove(noExporters)
	var apps, sidecars []*proc
	exited := make(chan *proc, 2*len(f.Apps))
	stopAll := func() {
		stop(apps, o.AppStopTimeout)
		stop(sidecars, 10*time.Second)
	}
	for _, a := range f.Apps {
		tokens := f.tokens(a)
		d, err := start(a.AppID+" daprd", f.abs(a.AppDirPath), o.Daprd, f.daprdArgs(a, noExporters), daprdEnv(o.DaprdGOGC, f.listenAddress(a), append(f.daprdFileEnv(a), tokens...)), out, exited)
		if err != nil {
			stopAll()
			return err
		}
		sidecars = append(sidecars, d)
		if o.Started != nil {
			o.Started(d.name, d.cmd.Process.Pid)
		}
		name, args := a.Command[0], a.Command[1:]
		if strings.Contains(name, "/") && !filepath.IsAbs(name) {
			name = filepath.Join(f.abs(a.AppDirPath), name)
		}
		p, err := start(a.AppID, f.abs(a.AppDirPath), name, args, append(f.env(a), tokens...), out, exited)
		if err != nil {
			stopAll()
			return err
		}
		apps = append(apps, p)
		if o.Started != nil {
			o.Started(p.name, p.cmd.Process.Pid)
		}
	}
	healthy := make(chan error, 1)
	go func() { healthy <- waitHealthy(ctx, f, o.HealthTimeout) }()
	var failed error
	select {
	case err := <-healthy:
		if err != nil {
			failed = err
			break
		}
		if o.Ready != nil {
			o.Ready(f)
		}
		select {
		case <-ctx.Done():
		case p := <-exited:
			failed = fmt.Errorf("%s exited on its own: %v", p.name, p.err)
		}
	case p := <-exited:
		failed = fmt.Errorf("%s exited during start-up: %v", p.name, p.err)
	case <-ctx.Done():
	}
	fmt.Fprintln(out, "stopping: apps first (they drain), then their sidecars")
	stopAll()
	return failed
}

// NoExportersConfig is the Configuration a daprd gets first whenever its app
// has no metricsPort, so nothing exports what daprd records; the app's own
// config file, if any, is applied after it and wins where both speak (a file
// that configures tracing should set samplingRate, or it keeps "0").
//
// daprd records metrics whenever its Configuration leaves
// spec.metric.enabled at its default, true, even when --enable-metrics=false
// leaves it without an exporter to read them from: in make bench's profiles
// (-profile), 5-10 % of a sidecar's user-space CPU went to figures nobody
// could read. Its default tracing samples one request in 10 000 for an
// exporter that is not there, and hands the other requests an all-zero
// traceparent; with sampling off daprd runs no tracing middleware (3-5 % less
// sidecar CPU per order in make bench) and still passes a caller's
// traceparent on to the app.
const NoExportersConfig = `# Written by the shop's launcher for apps without a metricsPort, applied
# before the app's own config file: with no exporter, what daprd would
# record cannot be read.
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: launcher-no-exporters
spec:
  metric:
    enabled: false
  tracing:
    samplingRate: "0"
`

func writeNoExportersConfig() (string, error) {
	f, err := os.CreateTemp("", "launcher-no-exporters-*.yaml")
	if err != nil {
		return "", fmt.Errorf("write the no-exporters daprd configuration: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(NoExportersConfig); err != nil {
		return "", fmt.Errorf("write the no-exporters daprd configuration: %w", err)
	}
	return f.Name(), nil
}

// daprdArgs is a's daprd command line; noExporters is the path of the
// Configuration given first to a daprd without metricsPort, before the
// app's own config file.
func (f *File) daprdArgs(a App, noExporters string) []string {
	listen := f.listenAddress(a)
	args := []string{
		"--app-id", a.AppID,
		"--dapr-listen-addresses", listen,
		"--dapr-internal-grpc-listen-address", listen,
		"--app-channel-address", f.probeHost(a), // where the app listens
		"--app-protocol", f.protocol(a),
		"--dapr-http-port", itoa(a.DaprHTTPPort),
		"--dapr-grpc-port", itoa(a.DaprGRPCPort),
		"--log-level", firstNonEmpty(a.LogLevel, f.Common.LogLevel, "warn"),
		"--placement-host-address", "",
		"--scheduler-host-address", "",
	}
	for _, r := range f.resources(a) {
		args = append(args, "--resources-path", r)
	}
	if a.AppPort != 0 {
		args = append(args, "--app-port", itoa(a.AppPort))
	}
	if a.MetricsPort != 0 {
		args = append(args, "--metrics-port", itoa(a.MetricsPort), "--metrics-listen-address", listen)
	} else {
		args = append(args, "--enable-metrics=false")
	}
	if a.DaprInternalPort != 0 {
		args = append(args, "--dapr-internal-grpc-port", itoa(a.DaprInternalPort))
	}
	// daprd applies its --config files in order, each over the last: the
	// file's own Configuration (its API allowlist, tracing) wins over the
	// no-exporters defaults.
	if a.MetricsPort == 0 && noExporters != "" {
		args = append(args, "--config", noExporters)
	}
	if cfg := firstNonEmpty(a.ConfigFilePath, f.Common.ConfigFilePath); cfg != "" {
		args = append(args, "--config", f.abs(cfg))
	}
	if a.EnableAPILogging {
		args = append(args, "--enable-api-logging")
	}
	if a.EnableProfiling {
		args = append(args, "--enable-profiling")
		if a.ProfilePort != 0 {
			args = append(args, "--profile-port", itoa(a.ProfilePort))
		}
	}
	if a.MaxBodySize != "" {
		args = append(args, "--max-body-size", a.MaxBodySize)
	}
	return args
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func start(name, dir, bin string, args, env []string, out io.Writer, exited chan<- *proc) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pw.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go prefix(out, "["+name+"] ", pr)
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		close(p.done)
		select {
		case exited <- p:
		default: // nobody is waiting for it (a cluster's test stopped it)
		}
	}()
	return p, nil
}

// stop sends SIGTERM to every process group, waits up to timeout, then kills.
func stop(ps []*proc, timeout time.Duration) {
	for _, p := range ps {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	}
	deadline := time.After(timeout)
	for _, p := range ps {
		select {
		case <-p.done:
		case <-deadline:
			for _, q := range ps {
				_ = syscall.Kill(-q.cmd.Process.Pid, syscall.SIGKILL)
			}
			for _, q := range ps {
				<-q.done
			}
			return
		}
	}
}

func waitHealthy(ctx context.Context, f *File, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(f.Apps))
	for i, a := range f.Apps {
		wg.Go(func() {
			url := fmt.Sprintf("http://%s/v1.0/healthz", net.JoinHostPort(f.probeHost(a), itoa(a.DaprHTTPPort)))
			for {
				resp, err := http.Get(url)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusNoContent {
						return
					}
				}
				select {
				case <-ctx.Done():
					errs[i] = fmt.Errorf("%s: sidecar not healthy within %s (%s)", a.AppID, timeout, url)
					return
				case <-time.After(200 * time.Millisecond):
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func prefix(out io.Writer, p string, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Fprintf(out, "%s%s\n", p, sc.Text())
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// LocalStorage returns, per app, the bindings.localstorage components its
// sidecar loads and where they write (resolved against the app's directory).
func (f *File) LocalStorage(a App) map[string]string {
	out := map[string]string{}
	for _, dir := range f.resources(a) {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".yaml") {
				continue
			}
			raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				continue
			}
			var c struct {
				Metadata struct{ Name string }
				Spec     struct {
					Type     string
					Metadata []struct{ Name, Value string }
				}
				Scopes []string
			}
			if yaml.Unmarshal(raw, &c) != nil || c.Spec.Type != "bindings.localstorage" {
				continue
			}
			if len(c.Scopes) > 0 && !containsStr(c.Scopes, a.AppID) {
				continue
			}
			for _, m := range c.Spec.Metadata {
				if m.Name == "rootPath" {
					p := m.Value
					if !filepath.IsAbs(p) {
						p = filepath.Join(f.abs(a.AppDirPath), p)
					}
					out[c.Metadata.Name] = p
				}
			}
		}
	}
	return out
}
