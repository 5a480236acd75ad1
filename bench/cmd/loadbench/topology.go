package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/daprfn/shop/internal/daprtest"
	"github.com/daprfn/shop/internal/launch"
)

// topology is a running set of apps and sidecars.
type topology struct {
	name     string
	dir      string            // temp dir: run file, components, data
	orderURL string            // POST /orders through the order-service sidecar
	invURL   string            // GET /inventory through the inventory sidecar
	getURL   string            // GET /orders/{id} prefix
	countURL string            // floor only: the null notification app's count
	pageURL  string            // with -sse: the storefront's page
	profiles map[string]string // process name -> CPU profile URL (with -profile)
	mu       sync.Mutex
	pids     map[string]int
	stop     func() error
}

func (t *topology) processes() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int, len(t.pids))
	for k, v := range t.pids {
		out[k] = v
	}
	return out
}

// The seed's ports: the order-service sidecar answers on :3500. The
// sidecars' gRPC ports sit below Linux's ephemeral range (32768-60999) so
// that no outgoing connection holds one when the next topology starts.
var seedApps = []struct {
	id, fn, role            string
	app, http, grpc, health int
	protocol                string
}{
	{"order-service", "order", "order", 3000, 3500, 23501, 0, "http"},
	{"inventory-service", "inventory", "inventory", 3001, 3501, 23502, 3101, "grpc"},
	{"notification-service", "notification", "notification", 3002, 3502, 23503, 3102, "grpc"},
}

func startTopology(ctx context.Context, o options, name string) (*topology, error) {
	dir, err := os.MkdirTemp(o.dataDir, "loadbench-"+name+"-")
	if err != nil {
		return nil, err
	}
	// The previous topology's processes may still be releasing their ports.
	http.DefaultClient.CloseIdleConnections()
	for _, p := range fixedPorts {
		if err := waitFree(p, 20*time.Second); err != nil {
			return nil, fmt.Errorf("port %d is taken (is `make run` still running?): %w", p, err)
		}
	}
	t := &topology{name: name, dir: dir, pids: map[string]int{}, profiles: map[string]string{}}
	profilePort := 7700
	metricsPort := 9089
	appMetricsPort := 9189 // the shop's apps serve their own metrics, as the run files have them
	// The seed scenario runs its sidecars as `dapr run` starts them:
	// recording metrics for an exporter (the launcher turns them off only
	// without a port) and with Go's default GC.
	asDaprRun := name == "seed"
	var stopRedis func()
	data := filepath.Join(dir, "data")
	for _, sub := range []string{"orders", "emails"} {
		if err := os.MkdirAll(filepath.Join(data, sub), 0o755); err != nil {
			return nil, err
		}
	}
	repl := map[string]string{"value: data/orders": "value: " + filepath.Join(data, "orders"), "value: data/emails": "value: " + filepath.Join(data, "emails"),
		`value: "file:data/shop.db?`:         `value: "file:` + filepath.Join(data, "shop.db") + `?`,
		`value: "file:data/notification.db?`: `value: "file:` + filepath.Join(data, "notification.db") + `?`,
		// Saturation needs room for many events in flight.
		`value: "100"`: `value: "1000"`}
	// The shop's sidecars run with the API allowlists they ship with
	// (deploy/config), as its run files start them.
	shopConfig := func(id string) string {
		if name == "embedded" {
			id = "embedded"
		}
		return filepath.Join(o.repo, "deploy", "config", id+".yaml")
	}
	var run strings.Builder
	run.WriteString("version: 1\ncommon:\n  logLevel: warn\n  resourcesPath: ./components\n")
	if o.listen != "" {
		fmt.Fprintf(&run, "  listenAddress: %s\n", o.listen)
	}
	run.WriteString("apps:\n")
	app := func(id string, appPort, httpPort, grpcPort int, protocol string, command []string, env map[string]string) {
		fmt.Fprintf(&run, "- appID: %s\n  appDirPath: %s\n  appPort: %d\n  daprHTTPPort: %d\n  daprGRPCPort: %d\n  appProtocol: %s\n  command: [%s]\n",
			id, o.repo, appPort, httpPort, grpcPort, protocol, quoteAll(command))
		if command[0] == o.shop {
			appMetricsPort++
			fmt.Fprintf(&run, "  configFilePath: %s\n  appMetricsPort: %d\n", shopConfig(id), appMetricsPort)
		}
		if asDaprRun {
			metricsPort++
			fmt.Fprintf(&run, "  metricsPort: %d\n", metricsPort)
		}
		if o.profile {
			profilePort++
			fmt.Fprintf(&run, "  enableProfiling: true\n  profilePort: %d\n", profilePort)
			t.profiles[id+" daprd"] = fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile", profilePort)
			if command[0] == o.shop {
				env["PPROF_ADDR"] = fmt.Sprintf("127.0.0.1:%d", profilePort+100)
				t.profiles[id] = fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile", profilePort+100)
			}
		}
		run.WriteString("  env:\n")
		if command[0] == o.shop || command[0] == o.nullapp {
			// The Go apps, the shop's and the floor's alike, run as the run
			// files in deploy/ set them: GOMAXPROCS=1.
			env["GOMAXPROCS"] = "1"
		}
		if command[0] == o.shop {
			for k, v := range o.appEnv {
				env[k] = v
			}
		}
		for k, v := range env {
			fmt.Fprintf(&run, "    %s: %q\n", k, v)
		}
	}
	// Large stock so that stock never runs out during a run; RESTOCK_LEVEL 1
	// keeps the cron restock from topping it up in the middle of an audit.
	catalog := "product-1:Laptop:100000000"
	switch name {
	case "embedded":
		if err := copyComponents(filepath.Join(o.repo, "components", "embedded"), filepath.Join(dir, "components"), repl); err != nil {
			return nil, err
		}
		a := seedApps[0]
		app(a.id, a.app, a.http, a.grpc, a.protocol, []string{o.shop, "serve"}, map[string]string{
			"FUNCTIONS": "order,inventory,notification", "CATALOG": catalog, "RESTOCK_LEVEL": "1", "LOG_LEVEL": "warn"})
		t.invURL = fmt.Sprintf("http://127.0.0.1:%d/v1.0/invoke/%s/method/inventory", a.http, a.id)
	case "distributed", "floor", "floor-bindings":
		redis, err := t.privateRedis(dir)
		if err != nil {
			return nil, err
		}
		stopRedis = redis.Stop
		repl["envRef: REDIS_HOST"] = "value: " + redis.Addr
		sets := []string{"redis", "email-files"}
		for _, set := range sets {
			if err := copyComponents(filepath.Join(o.repo, "components", set), filepath.Join(dir, "components"), repl); err != nil {
				return nil, err
			}
		}
		for _, a := range seedApps {
			env := map[string]string{"FUNCTIONS": a.fn, "CATALOG": catalog, "RESTOCK_LEVEL": "1", "LOG_LEVEL": "warn"}
			cmd := []string{o.shop, "serve"}
			if isFloor(name) {
				env = map[string]string{"ROLE": a.role, "BINDINGS": strconv.FormatBool(name == "floor-bindings")}
				cmd = []string{o.nullapp}
			}
			if a.health != 0 && !isFloor(name) {
				env["HEALTH_PORT"] = strconv.Itoa(a.health)
			}
			app(a.id, a.app, a.http, a.grpc, a.protocol, cmd, env)
		}
		if name == "distributed" && o.sse > 0 {
			// The storefront as the run files have it: a fourth app,
			// following the order and email events, its page on :8080.
			app("storefront", 3003, 3503, 23504, "grpc", []string{o.shop, "serve"}, map[string]string{
				"FUNCTIONS": "storefront", "HEALTH_PORT": "3103", "STOREFRONT_PORT": "8080", "LOG_LEVEL": "warn"})
			t.pageURL = "http://127.0.0.1:8080/"
		}
		t.invURL = fmt.Sprintf("http://127.0.0.1:%d/v1.0/invoke/inventory-service/method/inventory", seedApps[1].http)
		if isFloor(name) {
			t.countURL = fmt.Sprintf("http://127.0.0.1:%d/v1.0/invoke/notification-service/method/count", seedApps[2].http)
		}
	case "seed", "seed-tuned":
		redis, err := t.privateRedis(dir)
		if err != nil {
			return nil, err
		}
		stopRedis = redis.Stop
		if err := writeSeed(o, dir, redis.Addr); err != nil {
			stopRedis()
			return nil, err
		}
		for _, a := range seedApps {
			modules := filepath.Join(o.repo, "bench", "seed", a.id, "node_modules")
			app(a.id, a.app, a.http, a.grpc, "http", []string{"node", filepath.Join(dir, a.id, "app.js")}, map[string]string{"NODE_PATH": modules})
		}
		t.invURL = fmt.Sprintf("http://127.0.0.1:%d/v1.0/invoke/inventory-service/method/inventory", seedApps[1].http)
	default:
		return nil, fmt.Errorf("unknown scenario %q: want distributed, embedded, floor, floor-bindings, seed or seed-tuned", name)
	}
	t.orderURL = "http://127.0.0.1:3500/v1.0/invoke/order-service/method/orders"
	t.getURL = t.orderURL + "/"
	file := filepath.Join(dir, "dapr.yaml")
	if err := os.WriteFile(file, []byte(run.String()), 0o644); err != nil {
		return nil, err
	}
	f, err := launch.Load(file)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	ready := make(chan struct{})
	done := make(chan error, 1)
	logFile, err := os.Create(filepath.Join(o.out, name+"-run.log"))
	if err != nil {
		cancel()
		return nil, err
	}
	gogc := o.daprdGOGC
	if asDaprRun {
		gogc = "100"
	}
	go func() {
		done <- launch.Run(runCtx, f, launch.Options{Daprd: o.daprd, Out: logFile, DaprdGOGC: gogc,
			Ready:   func(*launch.File) { close(ready) },
			Started: func(n string, pid int) { t.mu.Lock(); t.pids[n] = pid; t.mu.Unlock() }})
	}()
	t.stop = func() error {
		cancel()
		err := <-done
		logFile.Close()
		if stopRedis != nil {
			stopRedis()
		}
		if err == nil {
			os.RemoveAll(dir)
		}
		return err
	}
	select {
	case <-ready:
	case err := <-done:
		logFile.Close()
		return nil, fmt.Errorf("topology %s did not start: %v (log: %s)", name, err, logFile.Name())
	case <-time.After(90 * time.Second):
		_ = t.stop()
		return nil, fmt.Errorf("topology %s not healthy within 90s", name)
	}
	time.Sleep(2 * time.Second) // let readiness checks and subscriptions settle
	return t, nil
}

// fixedPorts are the ports of the seed's topology (seedApps) and the seed's
// metrics ports: free before each topology starts, never a private Redis's.
var fixedPorts = []int{3000, 3001, 3002, 3101, 3102, 3500, 3501, 3502, 23501, 23502, 23503, 9090, 9091, 9092,
	3003, 3103, 3503, 23504, 8080} // the storefront's, with -sse

// redisProcess names the topology's Redis among its processes.
const redisProcess = "redis-server"

// privateRedis starts a non-persistent redis-server of the topology's own on
// a free port that no sidecar of the topology is about to take (PickPort
// draws from 20000-32767, where the sidecars' gRPC ports are), and counts it
// among the topology's processes.
func (t *topology) privateRedis(dir string) (daprtest.RedisServer, error) {
	for {
		port, err := daprtest.PickPort()
		if err != nil {
			return daprtest.RedisServer{}, err
		}
		if slices.Contains(fixedPorts, port) {
			continue
		}
		srv, err := daprtest.RunRedis(port, dir)
		if err == nil {
			t.mu.Lock()
			t.pids[redisProcess] = srv.PID
			t.mu.Unlock()
		}
		return srv, err
	}
}

// seedComponent is the seed's statestore.yaml and pubsub.yaml, as its
// tutorial gives them, with the benchmark's private Redis.
const seedComponent = `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: %s
spec:
  type: %s
  version: v1
  metadata:
  - name: redisHost
    value: %s
  - name: redisPassword
    value: ""
`

// writeSeed puts the seed's components and apps under dir: each app.js
// verbatim from bench/seed but for product-1's stock, raised as for the
// shop so that stock never runs out during a run.
func writeSeed(o options, dir, redisAddr string) error {
	comps := filepath.Join(dir, "components")
	if err := os.MkdirAll(comps, 0o755); err != nil {
		return err
	}
	for name, typ := range map[string]string{"statestore": "state.redis", "pubsub": "pubsub.redis"} {
		if err := os.WriteFile(filepath.Join(comps, name+".yaml"), fmt.Appendf(nil, seedComponent, name, typ, redisAddr), 0o644); err != nil {
			return err
		}
	}
	for _, a := range seedApps {
		src, err := os.ReadFile(filepath.Join(o.repo, "bench", "seed", a.id, "app.js"))
		if err != nil {
			return err
		}
		if a.id == "inventory-service" {
			const from, to = "'product-1': { name: 'Laptop', stock: 10 }", "'product-1': { name: 'Laptop', stock: 100000000 }"
			if !strings.Contains(string(src), from) {
				return fmt.Errorf("bench/seed/inventory-service/app.js no longer holds %q: update writeSeed", from)
			}
			src = []byte(strings.Replace(string(src), from, to, 1))
		}
		if err := os.MkdirAll(filepath.Join(dir, a.id), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, a.id, "app.js"), src, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// installSeed installs the seed apps' npm dependencies once, into each
// app's gitignored node_modules under bench/seed.
func installSeed(o options) error {
	for _, a := range seedApps {
		d := filepath.Join(o.repo, "bench", "seed", a.id)
		if _, err := os.Stat(filepath.Join(d, "node_modules")); err == nil {
			continue
		}
		cmd := exec.Command("npm", "install", "--no-audit", "--no-fund", "--no-package-lock", "--loglevel=error")
		cmd.Dir, cmd.Stdout, cmd.Stderr = d, os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("npm install in %s (the seed scenario needs Node.js and npm): %w", d, err)
		}
	}
	return nil
}

// fileCreateMicros is the mean wall time, in µs, of creating and writing a
// 300-byte file in dir (500 files, removed afterwards).
func fileCreateMicros(dir string) (float64, error) {
	d, err := os.MkdirTemp(dir, "loadbench-files-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(d)
	const n = 500
	body := make([]byte, 300)
	start := time.Now()
	for i := range n {
		if err := os.WriteFile(filepath.Join(d, "order-"+strconv.Itoa(i)+".json"), body, 0o644); err != nil {
			return 0, err
		}
	}
	return float64(time.Since(start).Microseconds()) / n, nil
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

func copyComponents(from, to string, repl map[string]string) error {
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			return err
		}
		s := string(raw)
		for old, n := range repl {
			s = strings.ReplaceAll(s, old, n)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), []byte(s), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func waitFree(port int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			return l.Close()
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(250 * time.Millisecond)
	}
}
