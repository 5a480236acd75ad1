package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/daprfn/shop/internal/daprtest"
	"github.com/daprfn/shop/internal/launch"
)

// The host mode's tests run the shop of deploy/dapr-hosts.yaml as shipped
// (its apps, app-ids, access-control Configurations and Redis components)
// on hosts made of network namespaces: Redis on the infrastructure host,
// sentry on the control-plane host, two app hosts with a replica of every
// function each. Orders come in as another machine's app would place them:
// through the sidecar of a storefront on a client host, which spreads them
// over both order-service replicas, gives a call a replica does not answer
// 5 s, then tries the other (its Resiliency below), and sends every order
// with an Idempotency-Key, so that a retried order is placed once.

// requireRoot skips a test that creates network namespaces when not root.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the host mode creates network namespaces, which needs root; CI runs the tests as root")
	}
}

const (
	storefrontHTTPPort = 3600
	storefrontGRPCPort = 50600
)

// storefrontResiliency is the storefront sidecar's: a call to a replica
// that does not answer (its host down or cut off) times out after 5 s, more
// than an order may take (ORDER_TIMEOUT 3 s), and is tried again, which
// name resolution sends to the next replica. Only answers that mean "not
// placed here" are retried.
const storefrontResiliency = `apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: storefront
spec:
  policies:
    timeouts:
      replica: 5s
    retries:
      nextReplica:
        policy: constant
        duration: 100ms
        maxRetries: 6
        matching:
          httpStatusCodes: "502-504"
          gRPCStatusCodes: "4,14"
  targets:
    apps:
      order-service:
        timeout: replica
        retry: nextReplica
      inventory-service:
        timeout: replica
        retry: nextReplica
`

// hostsShop is the shop running on hosts, with a storefront's sidecar on
// a client host.
type hostsShop struct {
	c                  *launch.Cluster
	log                *daprtest.SyncBuffer
	client             *launch.Host
	emailDir, orderDir string
	apps               map[string]launch.App // by function: order, inventory, notification
}

// startHosts runs deploy/dapr-hosts.yaml with appHosts app hosts, env
// added to every app's, the components of components/redis and
// components/email-files with the test's data directories and the fault
// tests' quick sweeps and retries, and a storefront's sidecar on a client
// host; it returns once every sidecar is healthy.
func startHosts(t *testing.T, appHosts int, env ...string) *hostsShop {
	t.Helper()
	requireRoot(t)
	f, err := launch.Load("../deploy/dapr-hosts.yaml")
	require.NoError(t, err)
	require.NotNil(t, f.Hosts)
	// The order and email files go to a tmpfs, as make bench's do: writing
	// them measures no disk.
	dir, err := os.MkdirTemp(daprtest.TmpfsDir(), "shop-hosts-test-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &hostsShop{log: &daprtest.SyncBuffer{}, emailDir: filepath.Join(dir, "emails"), orderDir: filepath.Join(dir, "orders"),
		apps: map[string]launch.App{}}
	components := filepath.Join(dir, "components")
	for _, d := range []string{s.emailDir, s.orderDir, components} {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	files := repoComponents(t, []string{"redis", "email-files"}, nil, map[string]string{
		"value: data/emails":  "value: " + s.emailDir,
		"value: data/orders":  "value: " + s.orderDir,
		`value: "@every 10s"`: `value: "@every 2s"`, // outbox-sweep
		`value: "@every 15s"`: `value: "@every 1s"`, // hold-sweep
		`value: "@every 30s"`: `value: "@every 1s"`, // email-sweep
		`value: "@every 1m"`:  `value: "@every 1h"`, // restock: not in the middle of an audit
		`value: "10s"`:        `value: "1s"`,        // pubsub redeliverInterval
		`value: "15s"`:        `value: "5s"`,        // pubsub processingTimeout: a dead replica's events go to the other
		"policy: exponential\n        maxInterval: 15s\n        maxRetries: 20": "policy: constant\n        duration: 200ms\n        maxRetries: 10",
	})
	for name, doc := range files {
		require.NoError(t, os.WriteFile(filepath.Join(components, name), []byte(doc), 0o644))
	}
	f.Hosts.AppHosts, f.Hosts.Forward = appHosts, nil
	f.Common.ResourcesPath, f.Common.ResourcesPaths = "", []string{components}
	f.Common.Env = merge(f.Common.Env, envMap(faultEnv), envMap(env))
	for i := range f.Apps {
		a := &f.Apps[i]
		a.Command = append([]string{shopBinary}, a.Command[1:]...)
		s.apps[strings.TrimSuffix(a.AppID, "-service")] = *a
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s.c, err = launch.StartCluster(ctx, f, launch.Options{Daprd: daprtest.Binary(t), Sentry: daprtest.SentryBinary(t),
		Out: s.log, HealthTimeout: 90 * time.Second, AppStopTimeout: 15 * time.Second})
	if err != nil {
		t.Logf("hosts output:\n%s", tail(s.log.String(), 20000))
	}
	require.NoError(t, err)
	t.Cleanup(func() {
		nss, _ := s.c.Namespaces()
		pids := map[int]bool{}
		for _, ns := range nss {
			ps, _ := launch.NamespacePIDs(ns)
			for _, p := range ps {
				pids[p] = true
			}
		}
		assert.NoError(t, s.c.Close(), "the hosts stop cleanly")
		left, err := s.c.Namespaces()
		assert.NoError(t, err)
		assert.Empty(t, left, "no namespace of the run is left")
		for p := range pids {
			assert.False(t, alive(p), "process %d of the run is gone", p)
		}
		if t.Failed() {
			t.Logf("hosts output (end):\n%s", tail(s.log.String(), 60000))
		}
	})

	s.client, err = s.c.AddHost("client")
	require.NoError(t, err)
	res := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(res, "resiliency.yaml"), []byte(storefrontResiliency), 0o644))
	_, err = s.c.StartSidecar(s.client, launch.Sidecar{AppID: "storefront", HTTPPort: storefrontHTTPPort, GRPCPort: storefrontGRPCPort, InternalPort: 50601, ResourcesPath: res})
	require.NoError(t, err)
	s.waitHealthy(t, s.client, storefrontHTTPPort, 30*time.Second)
	return s
}

func envMap(kvs []string) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// alive reports whether process pid exists (and is not a zombie).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// waitHealthy waits until the sidecar on h at port answers its health check.
func (s *hostsShop) waitHealthy(t *testing.T, h *launch.Host, port int, within time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool { st, _ := s.get(h, port, "/v1.0/healthz"); return st == http.StatusNoContent },
		within, 200*time.Millisecond, "the sidecar on %s:%d is healthy", h.Name, port)
}

// call sends method path with body to the sidecar at port on h.
func (s *hostsShop) call(h *launch.Host, method string, port int, path, body string) (int, string) {
	client := h.HTTPClient(20 * time.Second)
	defer client.CloseIdleConnections()
	req, _ := http.NewRequest(method, h.URL(port, path), strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *hostsShop) get(h *launch.Host, port int, path string) (int, string) {
	return s.call(h, http.MethodGet, port, path, "")
}

// first is the first app host, where the seed's curl lines run.
func (s *hostsShop) first() *launch.Host { return s.c.AppHosts()[0] }

// invoke calls app-id's method through the sidecar of fn on host h.
func (s *hostsShop) invoke(h *launch.Host, fn, method, appID, path, body string) (int, string) {
	return s.call(h, method, s.apps[fn].DaprHTTPPort, "/v1.0/invoke/"+appID+"/method/"+path, body)
}

func (s *hostsShop) orderFiles(t *testing.T) map[string]bool { return orderFiles(t, s.orderDir) }

func (s *hostsShop) emails(t *testing.T) map[string]int { return emailFiles(t, s.emailDir) }

// stock reads the inventory through its own sidecar on the first host.
func (s *hostsShop) stock(t *testing.T, product string) int {
	t.Helper()
	status, body := s.invoke(s.first(), "inventory", http.MethodGet, "inventory-service", "inventory", "")
	require.Equal(t, http.StatusOK, status, body)
	var inv map[string]struct{ Stock int }
	require.NoError(t, json.Unmarshal([]byte(body), &inv))
	return inv[product].Stock
}

// getOrder reads an order as the seed's curl line does, on the first host.
func (s *hostsShop) getOrder(t *testing.T, id string) (int, string) {
	return s.invoke(s.first(), "order", http.MethodGet, "order-service", "orders/"+id, "")
}

// load posts orders through the storefront's sidecar.
func (s *hostsShop) load(workers, max int, pause time.Duration) *orderLoad {
	url := s.client.URL(storefrontHTTPPort, "/v1.0/invoke/order-service/method/orders")
	return startLoadTo(s.client.HTTPClient(30*time.Second), url, loadOptions{workers: workers, max: max, pause: pause, idempotencyKeys: true})
}

// recovery logs and returns how the orders answered after the fault at
// from fared: how many failed, and from when to when after it (the time of
// their answers), with the kinds of failure.
func recovery(t *testing.T, what string, answers []loadAnswer, from time.Time) (failed int, last time.Duration) {
	t.Helper()
	var first time.Duration = -1
	ok, slowest := 0, time.Duration(0)
	kinds := map[string]int{}
	for _, a := range answers {
		end := a.at.Add(a.took)
		if end.Before(from) {
			continue
		}
		if a.status == http.StatusOK && a.body != "" {
			ok++
			slowest = max(slowest, a.took)
			continue
		}
		failed++
		kinds[fmt.Sprintf("%d %.160s", a.status, a.body)]++
		if first < 0 || end.Sub(from) < first {
			first = end.Sub(from)
		}
		last = max(last, end.Sub(from))
	}
	for k, n := range kinds {
		t.Logf("recovery: %s: %d x %s", what, n, k)
	}
	if failed == 0 {
		t.Logf("recovery: %s: no order failed; %d answered 200 after the fault, the slowest in %s", what, ok, slowest.Round(time.Millisecond))
	} else {
		t.Logf("recovery: %s: %d orders failed, answered from +%s to +%s after the fault; %d answered 200, the slowest in %s",
			what, failed, first.Round(time.Millisecond), last.Round(time.Millisecond), ok, slowest.Round(time.Millisecond))
	}
	return failed, last
}

// logTimes returns the times of the lines of the cluster's output that
// start with [who] and contain msg (the apps log text with time=...).
func logTimes(out, who, msg string) []time.Time {
	var times []time.Time
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "["+who+"] ") || !strings.Contains(line, msg) {
			continue
		}
		_, rest, ok := strings.Cut(line, " time=")
		if !ok {
			continue
		}
		stamp, _, _ := strings.Cut(rest, " ")
		if at, err := time.Parse(time.RFC3339Nano, strings.Trim(stamp, `"`)); err == nil {
			times = append(times, at)
		}
	}
	return times
}

// countBetween counts the times in [from, to].
func countBetween(times []time.Time, from, to time.Time) int {
	n := 0
	for _, at := range times {
		if !at.Before(from) && !at.After(to) {
			n++
		}
	}
	return n
}

// tookOver checks and logs that the first app host's replicas did the
// second's work while it was gone (from, to): its order-service adopted
// the outbox the other left, and its notification sent every email.
func tookOver(t *testing.T, s *hostsShop, what string, from, to time.Time) {
	t.Helper()
	out := s.log.String()
	adopted := logTimes(out, "app1 order-service", "adopted a silent outbox owner")
	i := slices.IndexFunc(adopted, func(at time.Time) bool { return at.After(from) })
	if assert.GreaterOrEqual(t, i, 0, "the first host's order-service adopted the outbox of the second's") {
		t.Logf("recovery: %s: the first host's order-service adopted the second's outbox +%s after the fault", what, adopted[i].Sub(from).Round(100*time.Millisecond))
	}
	sent := "order confirmation sent"
	first, second := countBetween(logTimes(out, "app1 notification-service", sent), from, to), countBetween(logTimes(out, "app2 notification-service", sent), from, to)
	t.Logf("recovery: %s: emails sent while the second host was gone: %d by the first host's notification, %d by the second's", what, first, second)
	assert.NotZero(t, first, "the first host's notification took the events")
}

// okBetween counts the orders answered 200 that were sent in [from, to].
func okBetween(answers []loadAnswer, from, to time.Time) int {
	n := 0
	for _, a := range answers {
		if !a.at.Before(from) && !a.at.After(to) && a.status == http.StatusOK && a.body != "" {
			n++
		}
	}
	return n
}

// An allowed call works, a sidecar of another app-id gets 403, and a caller
// without a certificate from sentry reaches nothing, even under an app-id
// the policies allow.
func TestHostsAccessControlLetsInTheDesignsCallsOnly(t *testing.T) {
	s := startHosts(t, 2)
	app1, app2 := s.c.AppHosts()[0], s.c.AppHosts()[1]

	// The seed's curl line, on the first host.
	status, body := s.invoke(app1, "order", http.MethodPost, "order-service", "orders", `{"productId": "product-1", "quantity": 2, "customerEmail": "customer@example.com"}`)
	require.Equal(t, http.StatusOK, status, body)
	id := decodeOrderID(t, body)

	// Each allowed call reaches the app: 200, or the app's own answer where
	// the call lacks the run's internal credential (a test's call does) or
	// the route is not the app's (yet).
	allowed := []struct {
		name         string
		h            *launch.Host
		fn, method   string
		target, path string
		body         string
		port         int
		status       int
		answer       string
	}{
		{name: "storefront places an order", h: s.client, port: storefrontHTTPPort, method: http.MethodPost, target: "order-service", path: "orders",
			body: `{"productId": "product-2", "quantity": 1, "customerEmail": "storefront@example.com"}`, status: http.StatusOK, answer: "orderId"},
		{name: "storefront reads the stock", h: s.client, port: storefrontHTTPPort, method: http.MethodGet, target: "inventory-service", path: "inventory",
			status: http.StatusOK, answer: "Laptop"},
		{name: "inventory (host 2) looks an order up", h: app2, fn: "inventory", method: http.MethodGet, target: "order-service", path: "orders/" + id,
			status: http.StatusOK, answer: id},
		{name: "inventory (host 2) looks orders up in bulk", h: app2, fn: "inventory", method: http.MethodPost, target: "order-service", path: "orders/lookup",
			body: `{"ids": ["` + id + `"]}`, status: http.StatusForbidden, answer: "internal_route"},
		{name: "notification (host 2) looks an order up", h: app2, fn: "notification", method: http.MethodGet, target: "order-service", path: "orders/" + id,
			status: http.StatusOK, answer: id},
	}
	for _, c := range allowed {
		port := c.port
		if c.fn != "" {
			port = s.apps[c.fn].DaprHTTPPort
		}
		status, body := s.call(c.h, c.method, port, "/v1.0/invoke/"+c.target+"/method/"+c.path, c.body)
		assert.Equal(t, c.status, status, "%s: %s", c.name, body)
		assert.Contains(t, body, c.answer, "%s: the app answers", c.name)
		assert.NotContains(t, body, "access control policy", c.name)
	}

	denied := []struct {
		name         string
		h            *launch.Host
		fn, method   string
		target, path string
		port         int
	}{
		{name: "notification takes stock", h: app1, fn: "notification", method: http.MethodPost, target: "inventory-service", path: "reserve"},
		{name: "notification reads the stock", h: app1, fn: "notification", method: http.MethodGet, target: "inventory-service", path: "inventory"},
		{name: "storefront takes stock", h: s.client, port: storefrontHTTPPort, method: http.MethodPost, target: "inventory-service", path: "reserve"},
		{name: "storefront confirms a hold", h: s.client, port: storefrontHTTPPort, method: http.MethodPost, target: "inventory-service", path: "confirm"},
		{name: "storefront reads an order", h: s.client, port: storefrontHTTPPort, method: http.MethodGet, target: "order-service", path: "orders/" + id},
		{name: "inventory places an order", h: app1, fn: "inventory", method: http.MethodPost, target: "order-service", path: "orders"},
		{name: "order-service reads the stock", h: app1, fn: "order", method: http.MethodGet, target: "inventory-service", path: "inventory"},
		{name: "order-service calls the notification", h: app1, fn: "order", method: http.MethodPost, target: "notification-service", path: "orders"},
		{name: "inventory calls the notification", h: app2, fn: "inventory", method: http.MethodPost, target: "notification-service", path: "orders"},
	}
	for _, c := range denied {
		port := c.port
		if c.fn != "" {
			port = s.apps[c.fn].DaprHTTPPort
		}
		body := ""
		if c.method == http.MethodPost {
			body = `{"productId": "product-1", "quantity": 1, "customerEmail": "x@example.com"}`
		}
		status, answer := s.call(c.h, c.method, port, "/v1.0/invoke/"+c.target+"/method/"+c.path, body)
		assert.Equal(t, http.StatusForbidden, status, "%s: %s", c.name, answer)
		assert.Contains(t, answer, "access control policy has denied access", c.name)
	}

	// A sidecar without a certificate, under an app-id the policies allow
	// to read the stock: the inventory's sidecars refuse its connection, so
	// the call reaches no app.
	probe, err := s.c.StartSidecar(s.client, launch.Sidecar{AppID: "storefront", HTTPPort: 3700, GRPCPort: 50700, InternalPort: 50701, NoMTLS: true})
	require.NoError(t, err)
	defer probe.Stop()
	s.waitHealthy(t, s.client, 3700, 30*time.Second)
	status, body = s.get(s.client, 3700, "/v1.0/invoke/inventory-service/method/inventory")
	assert.Equal(t, http.StatusInternalServerError, status, "a caller without a certificate: %s", body)
	assert.Contains(t, body, "ERR_DIRECT_INVOKE")
	assert.NotContains(t, body, "Laptop", "the inventory app did not answer")

	// Nor does a TLS client without a certificate get anything from a
	// sidecar's internal port (mTLS requires the client's).
	internal := net.JoinHostPort(app1.Addr.String(), fmt.Sprint(s.apps["inventory"].DaprInternalPort))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := s.client.DialContext(ctx, "tcp", internal)
	require.NoError(t, err, "the internal port listens on the host's address")
	conn := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}) //nolint:gosec // the test checks the server's side
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	err = conn.Handshake()
	if err == nil {
		_, err = conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
		if err == nil {
			_, err = conn.Read(make([]byte, 1))
		}
	}
	require.Error(t, err, "the internal port answers no client without a certificate")
	assert.Contains(t, err.Error(), "certificate", "refused for want of a client certificate")
}

// faultUnderLoadOnHosts runs a bounded stream of orders through the
// storefront, lets fault break something once 150 orders went through and
// returns the answers once 150 more did after fault returned; it returns
// the time of the fault too.
func faultUnderLoadOnHosts(t *testing.T, s *hostsShop, workers int, pause time.Duration, fault func()) ([]loadAnswer, time.Time) {
	t.Helper()
	load := s.load(workers, 20000, pause)
	load.waitOrders(t, 150)
	at := time.Now()
	fault()
	load.waitOrders(t, 150)
	return load.finish(), at
}

// Every process of an app host dies at once: the other host's replicas
// take the orders, adopt the dead order-service's outbox, settle its stock
// holds and leases and send the emails of the events it left; the host
// comes back and the audit finds every order as promised.
func TestHostsAppHostKilledUnderLoad(t *testing.T) {
	s := startHosts(t, 2)
	app2 := s.c.AppHosts()[1]
	var down window
	answers, at := faultUnderLoadOnHosts(t, s, 8, 5*time.Millisecond, func() {
		down.from = time.Now()
		require.NoError(t, s.c.Kill(app2))
		time.Sleep(8 * time.Second) // past OUTBOX_STALE_AFTER, HOLD_TTL and the pubsub's processingTimeout
		down.to = time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		require.NoError(t, s.c.Restart(ctx, app2))
	})
	recovery(t, "an app host killed", answers, at)
	assert.NotZero(t, okBetween(answers, down.from, down.to), "the first host's replicas took orders while the second was down")
	audit(t, s, answers)
	tookOver(t, s, "an app host killed", down.from, down.to)
}

// An app host is cut off for longer than the delivery retries (10 x
// 200 ms here), the outbox's adoption and the hold TTL; its processes go on
// running and find themselves adopted once the link is back.
func TestHostsAppHostPartitionedUnderLoad(t *testing.T) {
	s := startHosts(t, 2)
	app2 := s.c.AppHosts()[1]
	var cut window
	answers, at := faultUnderLoadOnHosts(t, s, 8, 5*time.Millisecond, func() {
		cut.from = time.Now()
		require.NoError(t, s.c.Partition(app2))
		time.Sleep(10 * time.Second)
		cut.to = time.Now()
		require.NoError(t, s.c.Heal(app2))
	})
	recovery(t, "an app host cut off", answers, at)
	assert.NotZero(t, okBetween(answers, cut.from, cut.to), "the first host's replicas took orders while the second was cut off")
	audit(t, s, answers)
	tookOver(t, s, "an app host cut off", cut.from, cut.to)
}

// The infrastructure host's Redis restarts (it persists every write):
// orders sent in the outage wait (an order fails after ORDER_TIMEOUT, 3 s
// here, and the storefront's sidecar tries it again, with its key), none
// answers later than its client's deadline or shows an internal error, and
// every order answered 200 is kept.
func TestHostsRedisRestartedUnderLoad(t *testing.T) {
	s := startHosts(t, 2)
	var outage window
	answers, at := faultUnderLoadOnHosts(t, s, 8, 5*time.Millisecond, func() {
		outage.from = time.Now()
		require.NoError(t, s.c.Kill(s.c.Infra()))
		time.Sleep(4 * time.Second) // longer than ORDER_TIMEOUT
		outage.to = time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, s.c.Restart(ctx, s.c.Infra()))
	})
	recovery(t, "Redis restarted", answers, at)
	waited := 0
	for _, a := range answers {
		if !a.at.Before(outage.from) && !a.at.After(outage.to) && a.took > 2*time.Second {
			waited++
		}
		if a.status != http.StatusOK {
			assert.Less(t, a.took, 30*time.Second, "answered within the client's deadline: %d %s", a.status, a.body)
			for _, internal := range []string{"dial tcp", "redis", "connection refused"} {
				assert.NotContains(t, strings.ToLower(a.body), internal, "the answer shows no internal error text")
			}
		}
	}
	assert.NotZero(t, waited, "orders sent in the outage waited for Redis")
	audit(t, s, answers)
}

// The control-plane host's sentry is down for a minute: the sidecars keep
// the certificates they have (valid 24 h), so orders go on; what stops is
// every new sidecar, which cannot get a certificate and never becomes
// healthy until sentry is back.
func TestHostsSentryDownForAMinuteUnderLoad(t *testing.T) {
	s := startHosts(t, 2)
	var outage window
	answers, at := faultUnderLoadOnHosts(t, s, 2, 40*time.Millisecond, func() {
		outage.from = time.Now()
		require.NoError(t, s.c.Kill(s.c.Control()))
		late, err := s.c.StartSidecar(s.client, launch.Sidecar{AppID: "storefront", HTTPPort: 3800, GRPCPort: 50800, InternalPort: 50801})
		require.NoError(t, err)
		defer late.Stop()
		time.Sleep(20 * time.Second)
		st, _ := s.get(s.client, 3800, "/v1.0/healthz")
		assert.NotEqual(t, http.StatusNoContent, st, "a sidecar started while sentry is down gets no certificate and is not healthy")
		assert.False(t, late.Exited(), "it waits for sentry")
		time.Sleep(time.Until(outage.from.Add(time.Minute)))
		outage.to = time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, s.c.Restart(ctx, s.c.Control()))
		s.waitHealthy(t, s.client, 3800, 60*time.Second)
	})
	failed, _ := recovery(t, "sentry down for a minute", answers, at)
	assert.Zero(t, failed, "running sidecars keep their certificates: no order fails")
	assert.Greater(t, okBetween(answers, outage.from, outage.to), 100, "orders went on all minute")
	audit(t, s, answers)
}

// The launcher, SIGKILLed with its whole process group, leaves no
// namespace, link or process behind: its janitor removes them.
func TestHostsLauncherKilledLeavesNothingBehind(t *testing.T) {
	requireRoot(t)
	f, err := launch.Load("../deploy/dapr-hosts.yaml")
	require.NoError(t, err)
	f.Hosts.AppHosts, f.Hosts.Forward = 1, nil
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	for i := range f.Apps {
		a := &f.Apps[i]
		a.Command = append([]string{shopBinary}, a.Command[1:]...)
		a.ConfigFilePath = filepath.Join(root, "deploy", a.ConfigFilePath)
		a.AppDirPath = root
	}
	dir := t.TempDir()
	components := filepath.Join(dir, "components")
	require.NoError(t, os.MkdirAll(components, 0o755))
	for name, doc := range repoComponents(t, []string{"redis", "email-files"}, nil, map[string]string{
		"value: data/emails": "value: " + filepath.Join(dir, "emails"),
		"value: data/orders": "value: " + filepath.Join(dir, "orders"),
	}) {
		require.NoError(t, os.WriteFile(filepath.Join(components, name), []byte(doc), 0o644))
	}
	f.Common.ResourcesPath, f.Common.ResourcesPaths = "", []string{components}
	file := filepath.Join(dir, "dapr-hosts.yaml")
	raw, err := yaml.Marshal(f)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(file, raw, 0o644))

	linksBefore := rootLinks(t)
	out := &daprtest.SyncBuffer{}
	cmd := exec.Command(shopBinary, "run", "-f", file, "--daprd", daprtest.Binary(t), "--sentry", daprtest.SentryBinary(t))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("launcher output:\n%s", tail(out.String(), 20000))
		}
	})
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "The shop is up on 1 app hosts") }, 90*time.Second, 100*time.Millisecond)
	run := runIDOf(t, out.String())

	nss := namespacesOf(t, run)
	require.Len(t, nss, 4, "switch, infra, control and one app host: %v", nss)
	var pids []int
	for _, ns := range nss {
		ps, err := launch.NamespacePIDs(ns)
		require.NoError(t, err)
		pids = append(pids, ps...)
	}
	require.Len(t, pids, 2+2*len(f.Apps), "Redis, sentry, and every app with its sidecar")

	require.NoError(t, syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)) // the launcher and its process group, at once
	<-done
	require.Eventually(t, func() bool { return len(namespacesOf(t, run)) == 0 }, 30*time.Second, 200*time.Millisecond,
		"the janitor deletes every namespace of the run")
	for _, p := range pids {
		assert.False(t, alive(p), "process %d of the run is gone", p)
	}
	assert.Equal(t, linksBefore, rootLinks(t), "no link was left in this machine's own namespace")
	_, err = os.Stat(filepath.Join(launch.StateRoot(), run))
	assert.True(t, os.IsNotExist(err), "the run's state is removed")
}

// rootLinks lists the links of this machine's own network namespace.
func rootLinks(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	require.NoError(t, err)
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			names = append(names, strings.TrimSuffix(f[1], ":"))
		}
	}
	slices.Sort(names)
	return names
}

// runIDOf finds the run's id in the launcher's output.
func runIDOf(t *testing.T, out string) string {
	t.Helper()
	_, rest, ok := strings.Cut(out, "(run ")
	require.True(t, ok, "the banner names the run")
	id, _, _ := strings.Cut(rest, ")")
	return id
}

// namespacesOf lists the network namespaces of run.
func namespacesOf(t *testing.T, run string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	require.NoError(t, err)
	var nss []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "shop-"+run+"-") {
			nss = append(nss, f[0])
		}
	}
	return nss
}
