package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/internal/daprtest"
)

var shopBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shop-e2e-")
	if err != nil {
		panic(err)
	}
	shopBinary = filepath.Join(dir, "shop")
	build := exec.Command("go", "build", "-o", shopBinary, "../cmd/shop")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // as `make build` and the Dockerfile
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build shop: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// shopApp is one running shop process with its daprd.
type shopApp struct {
	appID   string
	appPort int
	daprd   *daprtest.Daprd
	env     []string
	log     *daprtest.SyncBuffer
	mu      sync.Mutex // guards cmd and exit across kill and restart
	cmd     *exec.Cmd
	exit    *exited
}

// exited is closed with the process's exit error once it is gone.
type exited struct {
	done chan struct{}
	err  error
}

func (a *shopApp) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(shopBinary)
	cmd.Env = a.env
	cmd.Stdout, cmd.Stderr = a.log, a.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	e := &exited{done: make(chan struct{})}
	go func() { e.err = cmd.Wait(); close(e.done) }()
	a.mu.Lock()
	a.cmd, a.exit = cmd, e
	a.mu.Unlock()
}

func (a *shopApp) current() (*exec.Cmd, *exited) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cmd, a.exit
}

// kill sends SIGKILL and waits for the process to be gone.
func (a *shopApp) kill(t *testing.T) {
	t.Helper()
	cmd, e := a.current()
	require.NoError(t, cmd.Process.Kill())
	<-e.done
	fmt.Fprintf(a.log, "\n--- killed by the test ---\n")
}

// restart starts the app again with the same environment and waits until
// its daprd reports it healthy.
func (a *shopApp) restart(t *testing.T) {
	t.Helper()
	a.start(t)
	a.daprd.WaitHealthy(t)
}

// distributedShop is the seed's topology: three apps, three daprds, Redis.
type distributedShop struct {
	order, inventory, notification *shopApp
	emailDir, orderDir             string
	topic                          string
}

type shopOptions struct {
	restockSchedule string
	env             []string // for every app
	// components, when set, replaces the generated Redis components: it gets
	// the app-ids and the email and order directories.
	components func(ids map[string]string, emailDir, orderDir string) map[string]string
	daprdDir   string // daprd's working directory
	appToken   string // APP_API_TOKEN for every app and its daprd
}

func startShop(t *testing.T, redisAddr string, o shopOptions) *distributedShop {
	t.Helper()
	if o.restockSchedule == "" {
		o.restockSchedule = "@every 1h"
	}
	s := &distributedShop{emailDir: t.TempDir(), orderDir: t.TempDir(), topic: daprtest.UniqueID("orders")}
	ids := map[string]string{"order": daprtest.UniqueID("order-service"), "inventory": daprtest.UniqueID("inventory-service"), "notification": daprtest.UniqueID("notification-service")}
	var resources map[string]string
	if o.components != nil {
		resources = o.components(ids, s.emailDir, s.orderDir)
	} else {
		resources = merge(redisComponents(redisAddr), map[string]string{
			"orderstore.yaml":   localstorageComponent("orderstore", s.orderDir),
			"email.yaml":        localstorageComponent("email", s.emailDir),
			"restock.yaml":      cronComponent("restock", o.restockSchedule),
			"outbox-sweep.yaml": cronComponent("outbox-sweep", "@every 2s"),
			"hold-sweep.yaml":   cronComponent("hold-sweep", "@every 1s"),
			"email-sweep.yaml":  cronComponent("email-sweep", "@every 1s"),
			"resiliency.yaml":   inboundRetry("pubsub"),
		})
	}
	protocols := map[string]string{"order": "http", "inventory": "grpc", "notification": "grpc"}
	internalToken := daprtest.UniqueID("internal-token") // the run's shared credential, as the launcher draws one
	start := func(fn string) *shopApp {
		appPort := daprtest.FreePort(t)
		var tokenEnv []string
		if o.appToken != "" {
			tokenEnv = []string{"APP_API_TOKEN=" + o.appToken}
		}
		d := daprtest.Start(t, daprtest.Options{AppID: ids[fn], AppPort: appPort, AppProtocol: protocols[fn], Resources: resources, Dir: o.daprdDir, Env: tokenEnv})
		a := &shopApp{appID: ids[fn], daprd: d, log: &daprtest.SyncBuffer{}}
		a.env = append(os.Environ(),
			"FUNCTIONS="+fn, "APP_ID="+ids[fn], "APP_PORT="+strconv.Itoa(appPort), "APP_PROTOCOL="+protocols[fn],
			"DAPR_GRPC_PORT="+strconv.Itoa(d.GRPCPort), "INVENTORY_APP_ID="+ids["inventory"], "ORDER_APP_ID="+ids["order"],
			"ORDERS_TOPIC="+s.topic, "ORDERS_DEADLETTER_TOPIC="+s.topic+"-deadletter", "LOG_LEVEL=warn",
			"INTERNAL_TOKEN="+internalToken)
		a.env = append(append(a.env, o.env...), tokenEnv...)
		a.appPort = appPort
		a.start(t)
		t.Cleanup(func() {
			a.stop(t)
			if t.Failed() {
				t.Logf("%s log:\n%s", ids[fn], a.log.String())
			}
		})
		return a
	}
	s.inventory, s.notification, s.order = start("inventory"), start("notification"), start("order")
	for _, a := range []*shopApp{s.inventory, s.notification, s.order} {
		a.daprd.WaitHealthy(t)
	}
	return s
}

// stop sends SIGTERM and expects a clean exit 0 after draining.
func (a *shopApp) stop(t *testing.T) {
	cmd, e := a.current()
	select {
	case <-e.done:
		return // killed, or stopped before
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
		assert.NoError(t, e.err, "%s must exit 0 on SIGTERM", a.appID)
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Errorf("%s did not stop within 30s of SIGTERM", a.appID)
	}
}

func (s *distributedShop) placeOrder(t *testing.T, body string) (int, string) {
	return post(t, s.order.daprd.URL("/v1.0/invoke/"+s.order.appID+"/method/orders"), body)
}

func (s *distributedShop) stock(t *testing.T, product string) int {
	t.Helper()
	resp, err := http.Get(s.inventory.daprd.URL("/v1.0/invoke/" + s.inventory.appID + "/method/inventory"))
	require.NoError(t, err)
	defer resp.Body.Close()
	var inv map[string]struct{ Stock int }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&inv))
	return inv[product].Stock
}

// emails returns the .eml files per order id.
func (s *distributedShop) emails(t *testing.T) map[string]int { return emailFiles(t, s.emailDir) }

// emailFiles counts the email files of dir per order id.
func emailFiles(t *testing.T, dir string) map[string]int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := map[string]int{}
	for _, e := range entries {
		id, _, _ := strings.Cut(e.Name(), ".")
		out[id]++
	}
	return out
}

func decodeOrderID(t *testing.T, body string) string {
	t.Helper()
	var r struct{ OrderID, Status string }
	require.NoError(t, json.Unmarshal([]byte(body), &r), body)
	require.True(t, strings.HasPrefix(r.OrderID, "order-"), body)
	assert.Equal(t, "Order created successfully", r.Status)
	return r.OrderID
}

func TestShopSeedFlowOnRealDaprd(t *testing.T) {
	redis := daprtest.StartRedis(t)
	s := startShop(t, redis.Addr, shopOptions{})

	status, body := s.placeOrder(t, `{"productId": "product-1", "quantity": 2, "customerEmail": "customer@example.com"}`)
	require.Equal(t, http.StatusOK, status, body)
	id := decodeOrderID(t, body)

	resp, err := http.Get(s.order.daprd.URL("/v1.0/invoke/" + s.order.appID + "/method/orders/" + id))
	require.NoError(t, err)
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(got))
	var o map[string]any
	require.NoError(t, json.Unmarshal(got, &o))
	assert.Equal(t, id, o["id"])
	assert.Equal(t, "confirmed", o["status"])
	assert.EqualValues(t, 2, o["quantity"])

	assert.Equal(t, 8, s.stock(t, "product-1"))
	require.Eventually(t, func() bool { return s.emails(t)[id] == 1 }, 20*time.Second, 100*time.Millisecond, "the confirmation email file")
	eml, err := filepath.Glob(filepath.Join(s.emailDir, id+".eml"))
	require.NoError(t, err)
	require.Len(t, eml, 1)
	text, _ := os.ReadFile(eml[0])
	assert.Contains(t, string(text), "To: customer@example.com")
	assert.Contains(t, string(text), "Order ID: "+id)
	stored, err := os.ReadFile(filepath.Join(s.orderDir, id+".json"))
	require.NoError(t, err, "the order storage file")
	assert.Contains(t, string(stored), `"customerEmail":"customer@example.com"`)

	t.Run("bad input through the sidecar is a JSON 4xx", func(t *testing.T) {
		for body, want := range map[string]int{
			`{"productId":"product-1","quantity":2.5,"customerEmail":"a@example.com"}`: 400,
			`{"productId":"product-1","quantity":-1,"customerEmail":"a@example.com"}`:  400,
			`{"productId":"nope","quantity":1,"customerEmail":"a@example.com"}`:        404,
			`not json`: 400,
		} {
			status, got := s.placeOrder(t, body)
			assert.Equal(t, want, status, body)
			var e struct{ Error, Code string }
			require.NoError(t, json.Unmarshal([]byte(got), &e), got)
			assert.NotEmpty(t, e.Code)
		}
		assert.Equal(t, 8, s.stock(t, "product-1"))
	})

	t.Run("redelivered and seed-published events send one email each", func(t *testing.T) {
		ce := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"order-service","type":"com.daprfn.order.confirmed","datacontenttype":"application/json","data":{"orderId":%q,"customerEmail":"customer@example.com","productId":"product-1","quantity":2}}`, id, id)
		for range 2 {
			postCloudEvent(t, s.notification.daprd.URL("/v1.0/publish/pubsub/"+s.topic), ce)
		}
		// What the seed's Node order-service stores and then publishes, plain
		// JSON: unsigned, so the notification checks it against the order.
		status, body := post(t, s.order.daprd.URL("/v1.0/state/statestore"),
			`[{"key":"order-1700000000000","value":{"id":"order-1700000000000","productId":"product-2","quantity":1,"customerEmail":"seed@example.com","status":"confirmed"}}]`)
		require.Equal(t, http.StatusNoContent, status, body)
		status, _ = post(t, s.notification.daprd.URL("/v1.0/publish/pubsub/"+s.topic), `{"orderId":"order-1700000000000","customerEmail":"seed@example.com","productId":"product-2","quantity":1}`)
		require.Equal(t, http.StatusNoContent, status)
		require.Eventually(t, func() bool { return s.emails(t)["order-1700000000000"] == 1 }, 20*time.Second, 100*time.Millisecond)
		time.Sleep(time.Second) // the duplicates were published before the seed event
		assert.Equal(t, 1, s.emails(t)[id], "a redelivered event sends no second email")
	})
}

func TestShopConcurrentOrdersOnRealDaprd(t *testing.T) {
	redis := daprtest.StartRedis(t)
	s := startShop(t, redis.Addr, shopOptions{})
	const n = 64
	type result struct {
		status int
		body   string
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			st, b := s.placeOrder(t, fmt.Sprintf(`{"productId":"product-1","quantity":1,"customerEmail":"c%d@example.com"}`, i))
			results[i] = result{st, b}
		})
	}
	wg.Wait()
	var ids []string
	for _, r := range results {
		switch r.status {
		case http.StatusOK:
			ids = append(ids, decodeOrderID(t, r.body))
		case http.StatusBadRequest:
			assert.Contains(t, r.body, "Insufficient inventory")
		default:
			t.Errorf("unexpected answer %d %s", r.status, r.body)
		}
	}
	assert.Len(t, ids, 10, "exactly the stock of 10 is confirmed")
	assert.Equal(t, 0, s.stock(t, "product-1"))
	require.Eventually(t, func() bool { return len(s.emails(t)) >= len(ids) }, 30*time.Second, 100*time.Millisecond)
	time.Sleep(time.Second)
	mails := s.emails(t)
	assert.Len(t, mails, len(ids), "one email per confirmed order and no other")
	for _, id := range ids {
		assert.Equal(t, 1, mails[id], "exactly one email for %s", id)
	}
}

// With APP_API_TOKEN on every app and its daprd, over both app protocols,
// everything still flows (daprd 1.18.2 sends no token on the gRPC discovery
// calls, which the runtime exempts) and the app ports refuse other callers.
func TestShopWithAppTokensOnRealDaprd(t *testing.T) {
	redis := daprtest.StartRedis(t)
	s := startShop(t, redis.Addr, shopOptions{appToken: "app-secret", restockSchedule: "@every 1s", env: []string{"RESTOCK_LEVEL=12", "RESTOCK_EVERY=500ms"}})
	status, body := s.placeOrder(t, `{"productId":"product-1","quantity":1,"customerEmail":"a@example.com"}`)
	require.Equal(t, http.StatusOK, status, body)
	id := decodeOrderID(t, body)
	require.Eventually(t, func() bool { return s.emails(t)[id] == 1 }, 20*time.Second, 100*time.Millisecond, "the gRPC notification app is subscribed and notified")
	require.Eventually(t, func() bool { return s.stock(t, "product-1") == 12 }, 20*time.Second, 200*time.Millisecond, "the gRPC inventory app gets its cron binding")

	direct, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/orders/%s", s.order.appPort, id))
	require.NoError(t, err)
	direct.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, direct.StatusCode, "a caller around the sidecar is refused")
}

func TestShopCronRestockOnRealDaprd(t *testing.T) {
	redis := daprtest.StartRedis(t)
	s := startShop(t, redis.Addr, shopOptions{restockSchedule: "@every 1s", env: []string{"RESTOCK_LEVEL=15", "RESTOCK_EVERY=500ms"}})
	status, body := s.placeOrder(t, `{"productId":"product-1","quantity":3,"customerEmail":"a@example.com"}`)
	require.Equal(t, http.StatusOK, status, body)
	require.Eventually(t, func() bool { return s.stock(t, "product-1") == 15 }, 20*time.Second, 200*time.Millisecond, "the cron binding tops product-1 up to 15")
	assert.Equal(t, 50, s.stock(t, "product-2"), "restock never lowers stock")
	time.Sleep(1500 * time.Millisecond)
	assert.Equal(t, 15, s.stock(t, "product-1"), "more ticks change nothing")
}

// From a product with plenty of stock, the order-service leases units and
// places orders without calling the inventory; the lease is in the product's
// record until settled, a second or so after the last order.
func TestShopLeasesStockOnRealDaprd(t *testing.T) {
	redis := daprtest.StartRedis(t)
	s := startShop(t, redis.Addr, shopOptions{env: []string{"CATALOG=product-1:Laptop:5000", "STOCK_LEASE_UNITS=200"}})
	// At once, so that they all come within the lease's second.
	ids := make([]string, 5)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			status, body := s.placeOrder(t, fmt.Sprintf(`{"productId":"product-1","quantity":%d,"customerEmail":"l%d@example.com"}`, i+1, i))
			if assert.Equal(t, http.StatusOK, status, body) {
				ids[i] = decodeOrderID(t, body)
			}
		})
	}
	wg.Wait()
	status, record := get(t, s.inventory.daprd.URL("/v1.0/state/statestore/stock-product-1"))
	require.Equal(t, http.StatusOK, status, record)
	var p struct {
		Stock  int
		Leases map[string]struct{ Quantity int }
	}
	require.NoError(t, json.Unmarshal([]byte(record), &p))
	require.Len(t, p.Leases, 1, "one lease served the five orders: %s", record)
	for _, l := range p.Leases {
		assert.Equal(t, 200, l.Quantity)
	}
	assert.Equal(t, 4800, p.Stock)
	require.Eventually(t, func() bool { return s.stock(t, "product-1") == 5000-15 }, 10*time.Second, 100*time.Millisecond,
		"settled: the orders' 15 units sold, the rest back")
	require.Eventually(t, func() bool { return len(s.emails(t)) == 5 }, 20*time.Second, 100*time.Millisecond)
	for _, id := range ids {
		status, body := get(t, s.order.daprd.URL("/v1.0/invoke/"+s.order.appID+"/method/orders/"+id))
		assert.Equal(t, http.StatusOK, status, body)
	}
}

// With NOTIFICATION_BULK, daprd hands the gRPC notification app batches of
// order events (Dapr bulk subscribe); every order is still notified exactly
// once, and a poison event in a batch is dead-lettered on its own.
func TestShopBulkNotificationOnRealDaprd(t *testing.T) {
	redis := daprtest.StartRedis(t)
	// A long await so that the events of the orders below share batches.
	s := startShop(t, redis.Addr, shopOptions{env: []string{"NOTIFICATION_BULK=50", "NOTIFICATION_BULK_AWAIT=300ms", "LOG_LEVEL=debug"}})
	const poison = "poison-bulk"
	postCloudEvent(t, s.notification.daprd.URL("/v1.0/publish/pubsub/"+s.topic), fmt.Sprintf(
		`{"specversion":"1.0","id":%q,"source":"test","type":"com.daprfn.order.confirmed","datacontenttype":"application/json","data":{"orderId":"x y","customerEmail":"a@example.com"}}`, poison))
	const n = 20
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			status, body := s.placeOrder(t, fmt.Sprintf(`{"productId":"product-2","quantity":1,"customerEmail":"b%d@example.com"}`, i))
			if assert.Equal(t, http.StatusOK, status, body) {
				ids[i] = decodeOrderID(t, body)
			}
		})
	}
	wg.Wait()
	require.Eventually(t, func() bool { return len(s.emails(t)) >= n }, 30*time.Second, 100*time.Millisecond)
	deadURL := s.notification.daprd.URL("/v1.0/state/notification-state/deadletter-" + poison)
	require.Eventually(t, func() bool { st, _ := get(t, deadURL); return st == http.StatusOK }, 20*time.Second, 100*time.Millisecond, "the poison event was dead-lettered")
	time.Sleep(time.Second)
	mails := s.emails(t)
	assert.Len(t, mails, n, "one email per order and no other")
	for _, id := range ids {
		assert.Equal(t, 1, mails[id], "exactly one email for %s", id)
	}

	var batches, events, largest int
	for _, m := range regexp.MustCompile(`msg="bulk topic delivery" .*events=(\d+)`).FindAllStringSubmatch(s.notification.log.String(), -1) {
		k, _ := strconv.Atoi(m[1])
		batches, events, largest = batches+1, events+k, max(largest, k)
	}
	assert.GreaterOrEqual(t, events, n+1, "every event came in a bulk delivery")
	assert.Greater(t, largest, 1, "events shared deliveries (%d events in %d deliveries)", events, batches)
}

// Redis streams ack a delivery that still fails after the Resiliency retries
// (here 10 x 200 ms per topic), so an email whose sink stays down past the
// orders topic's retries and the dead-letter topic's is kept by the
// dead-letter handler and sent by the email-sweep cron once the sink is back.
func TestShopSendsAnEmailThatOutlastedEveryRetryOnRealDaprd(t *testing.T) {
	redis := daprtest.StartRedis(t)
	s := startShop(t, redis.Addr, shopOptions{})
	require.NoError(t, os.RemoveAll(s.emailDir))
	require.NoError(t, os.WriteFile(s.emailDir, nil, 0o644), "a file where the directory was: every email write fails")

	status, body := s.placeOrder(t, `{"productId":"product-1","quantity":1,"customerEmail":"a@example.com"}`)
	require.Equal(t, http.StatusOK, status, body)
	id := decodeOrderID(t, body)
	require.Eventually(t, func() bool {
		return strings.Contains(s.notification.log.String(), "kept for the email sweep")
	}, 30*time.Second, 100*time.Millisecond, "both topics' retries ran out")

	require.NoError(t, os.Remove(s.emailDir))
	require.NoError(t, os.Mkdir(s.emailDir, 0o755))
	require.Eventually(t, func() bool { return s.emails(t)[id] == 1 }, 30*time.Second, 200*time.Millisecond, "the email sweep sends the kept email")
	assert.Len(t, s.emails(t), 1)
}
