package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/daprfn/shop/internal/daprtest"
	"github.com/daprfn/shop/internal/launch"
)

// seedRun is the seed's topology as deploy/dapr.yaml runs it: three apps,
// each with its own daprd and that daprd's API allowlist, on Redis, started
// by the launcher, here on free ports, unique app-ids and a private Redis.
type seedRun struct {
	*launcher
	ids                map[string]string     // function -> its app-id in this run
	apps               map[string]launch.App // function -> its app of the run file
	redisAddr          string
	emailDir, orderDir string
}

// launchSeedTopology rewrites the real deploy/dapr.yaml for a test: unique
// app-ids, free ports, the test's shop binary, the repository's allowlists
// (configFilePath) and component files (components/redis and
// components/email-files, on redisAddr and the test's data dirs, changed
// further as repl says), env added to every app's. It waits until the shop
// is up.
func launchSeedTopology(t *testing.T, redisAddr string, env, repl map[string]string) *seedRun {
	t.Helper()
	return launchTopology(t, "..", shopBinary, redisAddr, env, repl)
}

// launchTopology is launchSeedTopology for the repository at root, with
// the shop binary bin: every app of its deploy/dapr.yaml, the seed's three
// (app-ids <function>-service) and any shop new added (app-id = function).
func launchTopology(t *testing.T, root, bin, redisAddr string, env, repl map[string]string) *seedRun {
	t.Helper()
	deploy, err := filepath.Abs(filepath.Join(root, "deploy"))
	require.NoError(t, err)
	f, err := launch.Load(filepath.Join(deploy, "dapr.yaml"))
	require.NoError(t, err)
	dir := t.TempDir()
	s := &seedRun{ids: map[string]string{}, apps: map[string]launch.App{}, redisAddr: redisAddr,
		emailDir: filepath.Join(dir, "data", "emails"), orderDir: filepath.Join(dir, "data", "orders")}
	for _, d := range []string{s.emailDir, s.orderDir, filepath.Join(dir, "components")} {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	for _, a := range f.Apps {
		s.ids[strings.TrimSuffix(a.AppID, "-service")] = daprtest.UniqueID(a.AppID)
	}

	secrets, err := filepath.Abs(filepath.Join(root, "components", "secrets", "local.json"))
	require.NoError(t, err)
	files := repoComponentsAt(t, root, []string{"redis", "email-files"}, s.ids, merge(map[string]string{
		"envRef: REDIS_HOST":                   "value: " + redisAddr,
		"value: data/emails":                   "value: " + s.emailDir,
		"value: data/orders":                   "value: " + s.orderDir,
		"value: components/secrets/local.json": "value: " + secrets,
		"      inventory-service:\n":           "      " + s.ids["inventory"] + ":\n", // the Resiliency's target app
	}, repl))
	for name, doc := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "components", name), []byte(doc), 0o644))
	}

	port := func(p int) int {
		if p == 0 {
			return 0
		}
		return daprtest.FreePort(t)
	}
	for i := range f.Apps {
		a := &f.Apps[i]
		fn := strings.TrimSuffix(a.AppID, "-service")
		require.NotEmpty(t, a.ConfigFilePath, "deploy/dapr.yaml gives %s's sidecar its API allowlist", a.AppID)
		if !filepath.IsAbs(a.ConfigFilePath) {
			a.ConfigFilePath = filepath.Join(deploy, a.ConfigFilePath)
		}
		require.FileExists(t, a.ConfigFilePath)
		a.AppID, a.AppDirPath = s.ids[fn], dir
		require.NotEmpty(t, a.Command)
		a.Command = append([]string{bin}, a.Command[1:]...)
		a.AppPort, a.DaprHTTPPort, a.DaprGRPCPort, a.MetricsPort = port(a.AppPort), port(a.DaprHTTPPort), port(a.DaprGRPCPort), port(a.MetricsPort)
		a.AppMetricsPort = port(a.AppMetricsPort)
		a.DaprInternalPort = daprtest.FreePort(t) // not in the file: daprd would pick one
		for _, k := range []string{"HEALTH_PORT", "STOREFRONT_PORT"} {
			if _, ok := a.Env[k]; ok {
				a.Env[k] = strconv.Itoa(daprtest.FreePort(t))
			}
		}
		a.ResourcesPath, a.ResourcesPaths = "", nil
		s.apps[fn] = *a
	}
	f.Common.ResourcesPath, f.Common.ResourcesPaths = "", []string{filepath.Join(dir, "components")}
	f.Common.Env = merge(f.Common.Env, map[string]string{"INVENTORY_APP_ID": s.ids["inventory"], "ORDER_APP_ID": s.ids["order"]}, env)
	run, err := yaml.Marshal(f)
	require.NoError(t, err)
	file := filepath.Join(dir, "dapr.yaml")
	require.NoError(t, os.WriteFile(file, run, 0o644))
	s.launcher = startLauncher(t, file)
	return s
}

// url is the address of path on fn's sidecar's HTTP port.
func (s *seedRun) url(fn, path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", s.apps[fn].DaprHTTPPort, path)
}

// stock is the seed's GET /inventory through the inventory's sidecar.
func (s *seedRun) stock(t *testing.T) map[string]int {
	t.Helper()
	status, body := get(t, s.url("inventory", "/v1.0/invoke/"+s.ids["inventory"]+"/method/inventory"))
	require.Equal(t, http.StatusOK, status, body)
	var inv map[string]struct{ Stock int }
	require.NoError(t, json.Unmarshal([]byte(body), &inv), body)
	out := map[string]int{}
	for id, p := range inv {
		out[id] = p.Stock
	}
	return out
}

// stockRecord is product-1's record as the inventory stored it, read
// straight from Redis.
func (s *seedRun) stockRecord(t *testing.T) (holds, leases map[string]json.RawMessage) {
	t.Helper()
	data, ok := redisHashField(t, s.redisAddr, s.ids["inventory"]+"||stock-product-1", "data")
	require.True(t, ok, "product-1's stock is in Redis")
	var p struct{ Holds, Leases map[string]json.RawMessage }
	require.NoError(t, json.Unmarshal([]byte(data), &p), data)
	return p.Holds, p.Leases
}

// shopState is everything an outsider could change: the stock as the seed's
// GET /inventory shows it, every Redis key and value, and every file in the
// data dirs.
type shopState struct {
	stock map[string]int
	redis map[string]string
	files map[string]string // emails/<name> or orders/<name> -> content
}

func (s *seedRun) state(t *testing.T) shopState {
	t.Helper()
	st := shopState{stock: s.stock(t), redis: redisDump(t, s.redisAddr), files: map[string]string{}}
	for name, dir := range map[string]string{"emails": s.emailDir, "orders": s.orderDir} {
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			require.NoError(t, err)
			st.files[name+"/"+e.Name()] = string(b)
		}
	}
	return st
}

// withoutStreams leaves out the Redis streams: the pub/sub's log of what was
// published, which publishing (open by design) appends to.
func withoutStreams(dump map[string]string) map[string]string {
	out := maps.Clone(dump)
	maps.DeleteFunc(out, func(_, v string) bool { return strings.HasPrefix(v, "stream ") })
	return out
}

// send makes one HTTP call with the header pairs given and returns the
// status and body.
func send(t *testing.T, method, url, body string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func is2xx(status int) bool { return status >= 200 && status < 300 }

// outsiderCalls are what anybody who reaches a sidecar's HTTP port could
// try beyond the seed's contract (invoke, healthz, publish): each reads or
// writes the shop's data or secrets, or stops the sidecar, if daprd answers
// it.
var outsiderCalls = []struct{ method, path, body string }{
	{"POST", "/v1.0/state/statestore", `[{"key":"stock-product-1","value":{"name":"Laptop","stock":1000}}]`},
	{"POST", "/v1.0/state/notification-state", `[{"key":"refused-outsider","value":{"reason":"outsider"}}]`},
	{"GET", "/v1.0/state/statestore/stock-product-1", ""},
	{"DELETE", "/v1.0/state/statestore/stock-product-1", ""},
	{"POST", "/v1.0/state/statestore/transaction", `{"operations":[{"operation":"upsert","request":{"key":"stock-product-1","value":{"name":"Laptop","stock":1000}}}]}`},
	{"POST", "/v1.0-alpha1/state/statestore/query", `{"filter":{}}`},
	{"POST", "/v1.0/bindings/email", `{"operation":"create","data":"To: victim@example.com\n\nforged","metadata":{"fileName":"forged.eml"}}`},
	{"POST", "/v1.0/bindings/orderstore", `{"operation":"create","data":"{\"id\":\"forged\"}","metadata":{"fileName":"forged.json"}}`},
	{"GET", "/v1.0/metadata", ""},
	{"PUT", "/v1.0/metadata/outsider", "was here"},
	{"GET", "/v1.0/secrets/localsecrets/redis-password", ""},
	{"GET", "/v1.0/secrets/localsecrets/bulk", ""},
	{"GET", "/v1.0/configuration/statestore", ""},
	{"GET", "/v1.0-alpha1/configuration/statestore", ""},
	{"POST", "/v1.0/actors/x/y/method/z", "{}"},
	{"POST", "/v1.0-beta1/workflows/dapr/x/start", "{}"},
	{"POST", "/v1.0/workflows/dapr/x/start", "{}"},
	{"POST", "/v1.0-alpha1/lock/x", `{"resourceId":"stock-product-1","lockOwner":"outsider","expiryInSeconds":60}`},
	{"POST", "/v1.0-alpha1/jobs/outsider", `{"schedule":"@every 1s","data":"x"}`},
	{"POST", "/v1.0-alpha1/publish/bulk/pubsub/orders", `[{"entryId":"1","event":{"orderId":"order-bulk","customerEmail":"victim@example.com","productId":"product-1","quantity":1},"contentType":"application/json"}]`},
	{"POST", "/v1.0/shutdown", ""}, // last: it must not stop the sidecar
}

// The seed's contract, and only it, is open on the sidecars' HTTP ports:
// placing and reading orders, the inventory's /check and /inventory, health
// and publishing. Everything else an outsider tries there is refused and
// changes nothing; the internal routes want the run's credential; forged
// order events email nobody; a check without an order gives its stock back
// after HOLD_TTL; and nothing of the run listens beyond loopback.
func TestTheEdgeLetsInTheSeedsContractAndNothingElse(t *testing.T) {
	const orderTimeout, holdTTL = 2 * time.Second, 4 * time.Second // HOLD_TTL > ORDER_TIMEOUT + a lease's 1s
	redis := daprtest.StartRedis(t)
	s := launchSeedTopology(t, redis.Addr,
		map[string]string{"ORDER_TIMEOUT": orderTimeout.String(), "HOLD_TTL": holdTTL.String()},
		map[string]string{
			`value: "@every 15s"`: `value: "@every 1s"`, // hold-sweep: a /check is given back soon after HOLD_TTL
			// The shop's own writes on a clock, the restock's top-up and the
			// outbox sweep's heartbeat, would change Redis between the audits
			// with no outsider; hourly, they do not run during the test.
			`value: "@every 1m"`:  `value: "@every 1h"`, // restock
			`value: "@every 10s"`: `value: "@every 1h"`, // outbox-sweep
		})
	inventory := s.ids["inventory"]
	sidecars := []string{"order", "inventory", "notification"}

	// The seed's curl line, as the launcher prints it.
	curl := regexp.MustCompile(`curl -X POST (http://localhost:\d+/v1\.0/invoke/\S+/method/orders)`).FindStringSubmatch(s.out.String())
	require.NotNil(t, curl, "the launcher prints the seed's curl line")
	require.Equal(t, fmt.Sprintf("http://localhost:%d/v1.0/invoke/%s/method/orders", s.apps["order"].DaprHTTPPort, s.ids["order"]), curl[1])
	placeOrder := func(t *testing.T, email string) string {
		t.Helper()
		status, body := post(t, curl[1], `{"productId": "product-1", "quantity": 2, "customerEmail": "`+email+`"}`)
		require.Equal(t, http.StatusOK, status, body)
		id := decodeOrderID(t, body)
		require.Eventually(t, func() bool {
			_, errEmail := os.Stat(filepath.Join(s.emailDir, id+".eml"))
			_, errOrder := os.Stat(filepath.Join(s.orderDir, id+".json"))
			return errEmail == nil && errOrder == nil
		}, 20*time.Second, 100*time.Millisecond, "order %s's email and order files", id)
		return id
	}
	genuine := placeOrder(t, "customer@example.com")
	require.Eventually(t, func() bool {
		for k := range redisDump(t, redis.Addr) {
			if _, key, _ := strings.Cut(k, "||"); strings.HasPrefix(key, "outbox-") && !strings.HasPrefix(key, "outbox-owner") {
				return false // the order's outbox record, deleted once its event is out
			}
		}
		holds, leases := s.stockRecord(t)
		return len(holds) == 0 && len(leases) == 0 // the order's hold, dropped once confirmed
	}, 10*time.Second, 100*time.Millisecond, "the genuine order is settled")
	before := s.state(t)
	require.Equal(t, 8, before.stock["product-1"], "the genuine order took 2 of product-1's 10")
	require.Len(t, before.files, 2, "one email and one order file: %v", slices.Collect(maps.Keys(before.files)))
	require.Contains(t, before.files, "emails/"+genuine+".eml")
	require.Contains(t, before.redis, s.ids["inventory"]+"||stock-product-1", "the audit sees the shop's Redis keys")

	t.Run("the sidecars refuse every other API and nothing changes", func(t *testing.T) {
		for _, fn := range sidecars {
			for _, c := range outsiderCalls {
				status, body := send(t, c.method, s.url(fn, c.path), c.body)
				assert.False(t, is2xx(status), "%s sidecar answered %s %s: %d %s", fn, c.method, c.path, status, body)
			}
		}
		for _, fn := range sidecars {
			status, body := get(t, s.url(fn, "/v1.0/healthz"))
			assert.Equal(t, http.StatusNoContent, status, "%s sidecar is still up after POST /v1.0/shutdown: %s", fn, body)
		}
		after := s.state(t)
		assert.Equal(t, before.stock, after.stock)
		assert.Equal(t, before.redis, after.redis)
		assert.Equal(t, before.files, after.files)
	})

	t.Run("internal routes want the run's credential", func(t *testing.T) {
		for route, body := range map[string]string{
			"lease":   `{"productId":"product-1","grant":{"id":"lease-AAAAAAAAAAAAAAAAAAAAAAAAAA","quantity":1,"secret":"00000000000000000000000000000000"}}`,
			"reserve": `{"orders":[{"productId":"product-1","quantity":5,"orderId":"order-outsider"}]}`,
			"confirm": `{"orders":[{"orderId":"order-outsider","productId":"product-1"}]}`,
		} {
			for _, fn := range sidecars {
				url := s.url(fn, "/v1.0/invoke/"+inventory+"/method/"+route)
				status, got := send(t, "POST", url, body)
				assert.Equal(t, http.StatusForbidden, status, "POST /%s through the %s sidecar without the credential: %s", route, fn, got)
				assert.Contains(t, got, "internal_route", "POST /%s through the %s sidecar", route, fn)
				status, got = send(t, "POST", url, body, "fn-internal-token", "guessed")
				assert.Equal(t, http.StatusForbidden, status, "POST /%s through the %s sidecar with a wrong credential: %s", route, fn, got)
				assert.Contains(t, got, "internal_route")
			}
		}
		for fn, id := range s.ids { // every app's counters, which the storefront reads with the credential
			status, got := send(t, "GET", s.url("order", "/v1.0/invoke/"+id+"/method/runtime/metrics"), "")
			assert.Equal(t, http.StatusForbidden, status, "GET /runtime/metrics of %s without the credential: %s", fn, got)
			assert.Contains(t, got, "internal_route")
		}
		after := s.state(t)
		assert.Equal(t, before.stock, after.stock)
		assert.Equal(t, before.redis, after.redis)
		assert.Equal(t, before.files, after.files)
	})

	// daprd delivers input bindings and topic events to routes of the app.
	// Over the gRPC app protocol (the inventory, the notification) they are
	// calls of their own, which no service invocation reaches.
	t.Run("the gRPC apps' crons and topic routes are out of an invocation's reach", func(t *testing.T) {
		for app, routes := range map[string][]string{
			"inventory":    {"restock", "hold-sweep"},
			"notification": {"email-sweep", "orders", "deadletter/orders"},
		} {
			for _, route := range routes {
				url := s.url("order", "/v1.0/invoke/"+s.ids[app]+"/method/"+route)
				status, got := send(t, "POST", url, `{"specversion":"1.0","id":"x","source":"x","type":"x","data":{"orderId":"order-x","customerEmail":"victim@example.com"}}`)
				assert.False(t, is2xx(status), "POST /%s of %s by invocation: %d %s", route, app, status, got)
			}
		}
		after := s.state(t)
		assert.Equal(t, before.stock, after.stock)
		assert.Equal(t, before.redis, after.redis)
		assert.Equal(t, before.files, after.files)
	})

	t.Run("forged order events are recorded and email nobody", func(t *testing.T) {
		forged := map[string]string{ // topic -> plain JSON event, as the seed's order-service publishes
			"orders":            `{"orderId":"order-0000000000000000000000000000dead","customerEmail":"victim@example.com","productId":"product-1","quantity":1}`,
			"orders-deadletter": `{"orderId":"order-0000000000000000000000000000beef","customerEmail":"victim2@example.com","productId":"product-1","quantity":1}`,
		}
		for topic, ev := range forged {
			status, body := post(t, s.url("order", "/v1.0/publish/pubsub/"+topic), ev)
			require.Equal(t, http.StatusNoContent, status, "publishing stays open: %s", body)
		}
		status, body := post(t, s.url("order", "/v1.0/publish/pubsub/orders"),
			`{"orderId":"`+genuine+`","customerEmail":"attacker@example.com","productId":"product-1","quantity":2}`)
		require.Equal(t, http.StatusNoContent, status, body)

		refusedPrefix := s.ids["notification"] + "||refused-" // the state store prefixes keys with the app-id
		refused := func() map[string]string {
			out := map[string]string{}
			for k := range redisDump(t, redis.Addr) {
				if strings.HasPrefix(k, refusedPrefix) {
					data, _ := redisHashField(t, redis.Addr, k, "data")
					out[k] = data
				}
			}
			return out
		}
		require.Eventually(t, func() bool { return len(refused()) >= 3 }, 20*time.Second, 100*time.Millisecond, "the notification records the forged events")
		var got []string
		for _, rec := range refused() {
			var r struct{ OrderID, CustomerEmail, Reason string }
			require.NoError(t, json.Unmarshal([]byte(rec), &r), rec)
			assert.NotEmpty(t, r.Reason)
			got = append(got, r.OrderID+" "+r.CustomerEmail)
		}
		slices.Sort(got)
		assert.Equal(t, []string{
			"order-0000000000000000000000000000beef victim2@example.com",
			"order-0000000000000000000000000000dead victim@example.com",
			genuine + " attacker@example.com",
		}, got)

		after := s.state(t)
		assert.Equal(t, before.files, after.files, "no email was written or rewritten; the genuine order's is still the one file")
		assert.Equal(t, before.stock, after.stock)
		maps.DeleteFunc(after.redis, func(k, _ string) bool { return strings.HasPrefix(k, refusedPrefix) })
		assert.Equal(t, withoutStreams(before.redis), withoutStreams(after.redis), "Redis changed only by the refused records and the published events")
	})

	t.Run("a check from outside is held for HOLD_TTL, then given back", func(t *testing.T) {
		stock := s.stock(t)["product-1"]
		start := time.Now()
		status, body := post(t, s.url("inventory", "/v1.0/invoke/"+inventory+"/method/check"), `{"productId":"product-1","quantity":5}`)
		require.Equal(t, http.StatusOK, status, body)
		var c struct {
			Available      bool
			ProductName    string
			RemainingStock int
		}
		require.NoError(t, json.Unmarshal([]byte(body), &c), body)
		assert.True(t, c.Available, body)
		assert.Equal(t, "Laptop", c.ProductName)
		assert.Equal(t, stock-5, c.RemainingStock)
		assert.Equal(t, stock-5, s.stock(t)["product-1"])
		holds, _ := s.stockRecord(t)
		require.Len(t, holds, 1)
		for id := range holds {
			assert.True(t, strings.HasPrefix(id, "check-"), "held under an unclaimed check's id: %s", id)
		}
		require.Eventually(t, func() bool { return s.stock(t)["product-1"] == stock }, holdTTL+15*time.Second, 200*time.Millisecond, "the hold sweep gives the check back")
		assert.GreaterOrEqual(t, time.Since(start), holdTTL, "not before HOLD_TTL")
		holds, _ = s.stockRecord(t)
		assert.Empty(t, holds)
	})

	t.Run("nothing of the run listens beyond loopback", func(t *testing.T) {
		pids := processTree(t, s.cmd.Process.Pid)
		require.Len(t, pids, 1+2*len(s.apps), "the launcher, and each app with its daprd")
		socks := processSockets(t, pids)
		listening := map[int]bool{}
		mdns := map[int]bool{}
		for _, sock := range socks {
			if !sock.listening() {
				continue
			}
			if strings.HasPrefix(sock.proto, "tcp") {
				listening[int(sock.local.Port())] = true
				assert.True(t, sock.local.Addr().IsLoopback(), "TCP listener beyond loopback: %s", sock)
				continue
			}
			if sock.local.Addr().IsLoopback() {
				continue
			}
			// The one exception: daprd's mDNS name resolution (the default
			// outside Kubernetes) joins the mDNS multicast group on port
			// 5353 on every interface. It only answers where an app-id is,
			// and it announces DAPR_HOST_IP, 127.0.0.1, which the launcher
			// sets, so what it points to listens on loopback only.
			if assert.True(t, sock.comm == "daprd" && sock.local.Port() == 5353, "UDP socket beyond loopback: %s", sock) {
				mdns[sock.pid] = true
			}
		}
		assert.Len(t, mdns, len(s.apps), "each daprd's mDNS socket is the only UDP socket beyond loopback, and was seen")
		for fn, a := range s.apps {
			health, _ := strconv.Atoi(a.Env["HEALTH_PORT"])
			web, _ := strconv.Atoi(a.Env["STOREFRONT_PORT"])
			for _, p := range []int{a.AppPort, a.DaprHTTPPort, a.DaprGRPCPort, a.DaprInternalPort, a.MetricsPort, a.AppMetricsPort, health, web} {
				if p != 0 {
					assert.True(t, listening[p], "%s's port %d is among the sockets seen", fn, p)
				}
			}
		}
	})

	t.Run("genuine orders still flow", func(t *testing.T) {
		placeOrder(t, "second@example.com")
		assert.False(t, s.exited(), "the launcher and every process of the run still run")
		s.stop(t)
		for _, id := range s.ids {
			left, _ := exec.Command("pgrep", "-f", id).Output()
			assert.Empty(t, strings.TrimSpace(string(left)), "no process of the run is left")
		}
	})
}
