package daprtest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Version is the pinned daprd version; bin/daprd-<Version>/daprd is where
// `make daprd` caches the binary.
const Version = "1.18.2"

// Binary returns the daprd to run: $DAPRD, else the repository's cached
// build. A missing binary fails the test with what to run.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("DAPRD"); p != "" {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "bin", "daprd-"+Version, "daprd")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("daprd not found at %s: run `make daprd` (or set DAPRD)", p)
	}
	return p
}

// SentryBinary returns the sentry to run (Dapr's certificate authority):
// $SENTRY, else the repository's cached build. A missing binary fails the
// test with what to run.
func SentryBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("SENTRY"); p != "" {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "bin", "sentry-"+Version, "sentry")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("sentry not found at %s: run `make sentry` (or set SENTRY)", p)
	}
	return p
}

var (
	portsMu sync.Mutex
	handed  = map[int]bool{}
)

// FreePort returns a TCP port that was free a moment ago and that this
// process has not handed out before (see PickPort).
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := PickPort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// PickPort returns a TCP port that was free a moment ago and that this
// process has not handed out before. Ports come from 20000-32767, below
// Linux's ephemeral range (32768-60999), so the kernel does not give one to an
// outgoing connection between now and the moment a server binds it.
func PickPort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		p := 20000 + rand.IntN(12768)
		if handed[p] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l.Close()
		handed[p] = true
		return p, nil
	}
	return 0, errors.New("no free port in 20000-32767")
}

// UniqueID returns name with a random suffix, for app-ids and topics that
// must not meet another test's over mDNS or a shared broker.
func UniqueID(name string) string { return fmt.Sprintf("%s-%06d", name, rand.IntN(1_000_000)) }

// Options describe one daprd.
type Options struct {
	AppID       string
	AppPort     int    // 0: no app
	AppProtocol string // "http" (default) or "grpc"
	// Resources are component/subscription/resiliency YAML documents written
	// to a temporary --resources-path.
	Resources map[string]string
	// ResourcesDir is used instead of Resources when set.
	ResourcesDir string
	Env          []string // extra environment, e.g. APP_API_TOKEN=...
	Dir          string   // working directory (relative component paths start here)
	Args         []string // extra daprd flags
}

// Daprd is a running daprd.
type Daprd struct {
	AppID              string
	HTTPPort, GRPCPort int
	bin                string
	args, env          []string
	dir                string
	mu                 sync.Mutex // guards cmd and done across Kill/Restart
	cmd                *exec.Cmd
	log                *SyncBuffer
	done               chan struct{}
}

// Start runs daprd and stops it when the test ends. It does not wait for
// health: call WaitHealthy once the app listens (daprd's healthz waits for
// the app) or WaitOutbound when there is none yet.
func Start(t testing.TB, o Options) *Daprd {
	t.Helper()
	dir := o.ResourcesDir
	if dir == "" {
		dir = t.TempDir()
		for name, doc := range o.Resources {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	d := &Daprd{AppID: o.AppID, HTTPPort: FreePort(t), GRPCPort: FreePort(t), log: &SyncBuffer{}, done: make(chan struct{})}
	if o.AppProtocol == "" {
		o.AppProtocol = "http"
	}
	args := []string{
		"--app-id", o.AppID,
		"--dapr-http-port", strconv.Itoa(d.HTTPPort),
		"--dapr-grpc-port", strconv.Itoa(d.GRPCPort),
		"--dapr-internal-grpc-port", strconv.Itoa(FreePort(t)),
		"--metrics-port", strconv.Itoa(FreePort(t)),
		"--resources-path", dir,
		"--app-protocol", o.AppProtocol,
		"--log-level", "info",
		"--placement-host-address", "",
		"--scheduler-host-address", "",
	}
	if o.AppPort != 0 {
		args = append(args, "--app-port", strconv.Itoa(o.AppPort))
	}
	d.bin, d.args, d.env, d.dir = Binary(t), append(args, o.Args...), append(os.Environ(), o.Env...), o.Dir
	if err := d.start(); err != nil {
		t.Fatalf("start daprd: %v", err)
	}
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("daprd %s log:\n%s", o.AppID, d.log.String())
		}
	})
	return d
}

func (d *Daprd) start() error {
	cmd := exec.Command(d.bin, d.args...)
	cmd.Env, cmd.Dir = d.env, d.dir
	cmd.Stdout, cmd.Stderr = d.log, d.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	d.mu.Lock()
	d.cmd, d.done = cmd, done
	d.mu.Unlock()
	return nil
}

func (d *Daprd) current() (*exec.Cmd, chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cmd, d.done
}

// Stop sends SIGTERM to daprd's process group and SIGKILL after 10 s.
func (d *Daprd) Stop() {
	cmd, done := d.current()
	select {
	case <-done:
		return
	default:
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// Kill sends SIGKILL to daprd's process group and waits for it to exit.
func (d *Daprd) Kill() {
	cmd, done := d.current()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// Restart starts daprd again, after Kill or Stop, with the same ports and
// flags. It does not wait for health.
func (d *Daprd) Restart(t testing.TB) {
	t.Helper()
	if _, done := d.current(); !isClosed(done) {
		t.Fatalf("daprd %s: Restart while it runs", d.AppID)
	}
	fmt.Fprintf(d.log, "\n--- restarted by the test ---\n")
	if err := d.start(); err != nil {
		t.Fatalf("restart daprd: %v", err)
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// PID is the process id of the daprd running now (a Restart changes it).
func (d *Daprd) PID() int {
	cmd, _ := d.current()
	return cmd.Process.Pid
}

// Log returns what daprd printed so far.
func (d *Daprd) Log() string { return d.log.String() }

// GRPCAddress is daprd's gRPC API address.
func (d *Daprd) GRPCAddress() string { return "127.0.0.1:" + strconv.Itoa(d.GRPCPort) }

// URL returns daprd's HTTP API URL for path, e.g. "/v1.0/healthz".
func (d *Daprd) URL(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", d.HTTPPort, path)
}

// WaitHealthy waits until GET /v1.0/healthz answers 204 (app reachable too).
func (d *Daprd) WaitHealthy(t testing.TB) { t.Helper(); d.wait(t, "/v1.0/healthz") }

// WaitOutbound waits until the sidecar's own APIs answer.
func (d *Daprd) WaitOutbound(t testing.TB) { t.Helper(); d.wait(t, "/v1.0/healthz/outbound") }

func (d *Daprd) wait(t testing.TB, path string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if _, done := d.current(); isClosed(done) {
			t.Fatalf("daprd %s exited early:\n%s", d.AppID, d.log.String())
		}
		resp, err := http.Get(d.URL(path))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("daprd %s: %s not healthy within 60s:\n%s", d.AppID, path, d.log.String())
}

// Redis is a private redis-server on a free port.
type Redis struct {
	Addr    string
	pid     int
	port    int
	dir     string
	persist bool
	mu      sync.Mutex
	stop    func()
}

// StartRedis runs a private, non-persistent redis-server for the test.
func StartRedis(t testing.TB) *Redis { t.Helper(); return startRedis(t, false) }

// StartDurableRedis runs a private redis-server that writes every change to
// its append-only file before answering (appendfsync always), so Restart
// keeps what it acknowledged.
func StartDurableRedis(t testing.TB) *Redis { t.Helper(); return startRedis(t, true) }

func startRedis(t testing.TB, persist bool) *Redis {
	t.Helper()
	port, err := PickPort()
	if err != nil {
		t.Fatal(err)
	}
	r := &Redis{port: port, dir: t.TempDir(), persist: persist}
	if err := r.run(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Kill)
	return r
}

func (r *Redis) run() error {
	srv, err := runRedis(r.port, r.dir, r.persist)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.Addr, r.pid, r.stop = srv.Addr, srv.PID, srv.Stop
	r.mu.Unlock()
	return nil
}

// PID is the process id of the redis-server running now.
func (r *Redis) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pid
}

// Kill stops the redis-server with SIGKILL.
func (r *Redis) Kill() {
	r.mu.Lock()
	stop := r.stop
	r.stop = nil
	r.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// Restart starts the redis-server again on the same port and directory.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	r.Kill()
	if err := r.run(); err != nil {
		t.Fatal(err)
	}
}

// RedisServer is a running redis-server.
type RedisServer struct {
	Addr string // host:port
	PID  int
	Stop func()
}

// RunRedis starts a non-persistent redis-server on 127.0.0.1:port with its
// working directory dir and returns it once it accepts connections.
func RunRedis(port int, dir string) (RedisServer, error) {
	return runRedis(port, dir, false)
}

func runRedis(port int, dir string, persist bool) (RedisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return RedisServer{}, errors.New("redis-server not on PATH: install Debian's redis-server package (.ci/run does)")
	}
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir}
	if persist {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return RedisServer{}, fmt.Errorf("start redis-server: %w", err)
	}
	srv := RedisServer{Addr: "127.0.0.1:" + strconv.Itoa(port), PID: cmd.Process.Pid, Stop: func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", srv.Addr); err == nil {
			c.Close()
			return srv, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	srv.Stop()
	return RedisServer{}, fmt.Errorf("redis-server on %s did not start within 10s", srv.Addr)
}

// SyncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
