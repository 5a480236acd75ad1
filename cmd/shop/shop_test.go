package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings/memory"
	"github.com/daprfn/shop/functions/inventory"
	"github.com/daprfn/shop/functions/lease"
	"github.com/daprfn/shop/functions/notification"
	"github.com/daprfn/shop/runtime"
	"github.com/daprfn/shop/runtime/runtimetest"
)

var fakeComponents = memory.Components{
	{Kind: "state", Name: "statestore", Type: "state.in-memory"},
	{Kind: "state", Name: "notification-state", Type: "state.in-memory"},
	{Kind: "pubsub", Name: "pubsub", Type: "pubsub.in-memory"},
	{Kind: "bindings", Name: "orderstore", Type: "bindings.localstorage"},
	{Kind: "bindings", Name: "email", Type: "bindings.localstorage"},
	{Kind: "bindings", Name: "email-smtp", Type: "bindings.smtp"},
	{Kind: "bindings", Name: "restock", Type: "bindings.cron"},
	{Kind: "bindings", Name: "outbox-sweep", Type: "bindings.cron"},
	{Kind: "bindings", Name: "hold-sweep", Type: "bindings.cron"},
	{Kind: "bindings", Name: "email-sweep", Type: "bindings.cron"},
}

// testShop is the shop on a fake sidecar, either embedded (one app serving
// every function) or distributed (the seed's three apps).
type testShop struct {
	sc                                      *runtimetest.Sidecar
	orderApp, inventoryApp, notificationApp string
}

func newTestShop(t *testing.T, embedded bool, env map[string]string) *testShop {
	t.Helper()
	s := &testShop{sc: runtimetest.New(), orderApp: "order-service", inventoryApp: "inventory-service", notificationApp: "notification-service"}
	s.sc.InternalToken = testInternalToken
	// One app per function of the table, as deploy/dapr.yaml runs them (the
	// seed's app-ids for the seed's three), or one app serving all of them.
	apps := map[string]string{}
	for _, name := range functionNames() {
		appID := name
		if seedApp := map[string]string{"order": s.orderApp, "inventory": s.inventoryApp, "notification": s.notificationApp}[name]; seedApp != "" {
			appID = seedApp
		}
		apps[appID] = name
	}
	if embedded {
		s.inventoryApp, s.notificationApp = "order-service", "order-service"
		apps = map[string]string{"order-service": strings.Join(functionNames(), ",")}
	}
	for appID, fns := range apps {
		t.Setenv("FUNCTIONS", fns)
		t.Setenv("APP_ID", appID)
		t.Setenv("INTERNAL_TOKEN", testInternalToken)
		t.Setenv("STOREFRONT_PORT", "0") // the page on any free port
		// Only order events on the topics, as the tests count them; a test
		// of the "emails sent" events sets it.
		t.Setenv("EMAILS_TOPIC", "")
		for k, v := range env {
			t.Setenv(k, v)
		}
		cfg, err := loadConfig()
		require.NoError(t, err)
		log := slog.New(slog.DiscardHandler)
		app := runtime.New(runtime.Options{Logger: log, Middleware: runtime.Defaults(log, cfg.MaxBodyBytes), InternalToken: cfg.InternalToken})
		p := ports{state: s.sc.State, notifyState: s.sc.State, pub: s.sc.Pub, out: s.sc.Bindings, invoke: s.sc, comps: fakeComponents}
		w, err := register(app, cfg, p, log)
		require.NoError(t, err)
		for _, f := range w.onReady {
			require.NoError(t, f(context.Background()))
		}
		t.Cleanup(w.close)
		s.sc.Serve(appID, app)
	}
	return s
}

// testInternalToken is the internal credential the test shop's apps share.
const testInternalToken = "test-internal-token"

// internalCall is the header of a call from one of the shop's functions.
var internalCall = http.Header{http.CanonicalHeaderKey(runtime.InternalTokenHeader): {testInternalToken}}

type answer struct {
	status int
	body   string
}

func (s *testShop) call(t *testing.T, appID, verb, path, body string, header http.Header) answer {
	t.Helper()
	resp := s.sc.Do(context.Background(), appID, verb, path, []byte(body), header)
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b)}
}

func (s *testShop) order(t *testing.T, body string) answer {
	return s.call(t, s.orderApp, http.MethodPost, "orders", body, nil)
}

func (s *testShop) stock(t *testing.T, product string) int {
	t.Helper()
	a := s.call(t, s.inventoryApp, http.MethodGet, "inventory", "", nil)
	require.Equal(t, http.StatusOK, a.status, a.body)
	var inv inventory.Inventory
	require.NoError(t, json.Unmarshal([]byte(a.body), &inv))
	return inv[product].Stock
}

func orderID(t *testing.T, a answer) string {
	t.Helper()
	require.Equal(t, http.StatusOK, a.status, a.body)
	var r struct{ OrderID, Status string }
	require.NoError(t, json.Unmarshal([]byte(a.body), &r))
	require.True(t, strings.HasPrefix(r.OrderID, "order-"), r.OrderID)
	assert.Equal(t, "Order created successfully", r.Status)
	return r.OrderID
}

// emailsTo counts emails sent for orderID.
func (s *testShop) emails(orderID string) int {
	n := 0
	for _, c := range s.sc.Bindings.Calls("email") {
		if strings.HasPrefix(c.Metadata["fileName"], orderID+".") {
			n++
		}
	}
	return n
}

func bothModes(t *testing.T, f func(t *testing.T, embedded bool)) {
	t.Run("distributed", func(t *testing.T) { f(t, false) })
	t.Run("embedded", func(t *testing.T) { f(t, true) })
}

const seedOrder = `{"productId": "product-1", "quantity": 2, "customerEmail": "customer@example.com"}`

func TestSeedFlow(t *testing.T) {
	bothModes(t, func(t *testing.T, embedded bool) {
		s := newTestShop(t, embedded, nil)
		id := orderID(t, s.order(t, seedOrder))

		got := s.call(t, s.orderApp, http.MethodGet, "orders/"+id, "", nil)
		require.Equal(t, http.StatusOK, got.status)
		var o map[string]any
		require.NoError(t, json.Unmarshal([]byte(got.body), &o))
		assert.Equal(t, id, o["id"])
		assert.Equal(t, "product-1", o["productId"])
		assert.EqualValues(t, 2, o["quantity"])
		assert.Equal(t, "customer@example.com", o["customerEmail"])
		assert.Equal(t, "confirmed", o["status"])
		assert.NotEmpty(t, o["createdAt"])

		assert.Equal(t, 8, s.stock(t, "product-1"))

		pub := s.sc.Pub.Published()
		require.Len(t, pub, 1)
		assert.Equal(t, id, pub[0].Event.ID, "the event id is the order id, so consumers can deduplicate")
		assert.Equal(t, "orders", pub[0].Topic)

		mails := s.sc.Bindings.Calls("email")
		require.Len(t, mails, 1)
		assert.Contains(t, string(mails[0].Data), "To: customer@example.com")
		assert.Contains(t, string(mails[0].Data), "Subject: Order confirmation "+id)
		assert.Contains(t, string(mails[0].Data), "Quantity: 2")

		files := s.sc.Bindings.Calls("orderstore")
		require.Len(t, files, 1)
		assert.Equal(t, id+".json", files[0].Metadata["fileName"])
		assert.Contains(t, string(files[0].Data), `"status":"confirmed"`)

		inv := s.call(t, s.inventoryApp, http.MethodGet, "inventory", "", nil)
		assert.JSONEq(t, `{"product-1":{"name":"Laptop","stock":8},"product-2":{"name":"Mouse","stock":50},"product-3":{"name":"Keyboard","stock":25}}`, inv.body)
	})
}

func TestBadInputIsAClearJSON4xx(t *testing.T) {
	bothModes(t, func(t *testing.T, embedded bool) {
		s := newTestShop(t, embedded, nil)
		cases := []struct {
			name, body string
			status     int
			code       string
		}{
			{"malformed JSON", `{"productId":`, 400, "invalid_json"},
			{"not an object", `[1,2]`, 400, "invalid_json"},
			{"fractional quantity", `{"productId":"product-1","quantity":2.5,"customerEmail":"a@example.com"}`, 400, "invalid_field"},
			{"quantity as text", `{"productId":"product-1","quantity":"2","customerEmail":"a@example.com"}`, 400, "invalid_field"},
			{"zero quantity", `{"productId":"product-1","quantity":0,"customerEmail":"a@example.com"}`, 400, "invalid_quantity"},
			{"negative quantity", `{"productId":"product-1","quantity":-3,"customerEmail":"a@example.com"}`, 400, "invalid_quantity"},
			{"too large quantity", `{"productId":"product-1","quantity":1001,"customerEmail":"a@example.com"}`, 400, "invalid_quantity"},
			{"missing product", `{"quantity":1,"customerEmail":"a@example.com"}`, 400, "invalid_product_id"},
			{"bad email", `{"productId":"product-1","quantity":1,"customerEmail":"not-an-email"}`, 400, "invalid_customer_email"},
			{"email with name", `{"productId":"product-1","quantity":1,"customerEmail":"Bob <bob@example.com>"}`, 400, "invalid_customer_email"},
			{"unknown product", `{"productId":"product-9","quantity":1,"customerEmail":"a@example.com"}`, 404, "product_not_found"},
			{"insufficient stock", `{"productId":"product-1","quantity":11,"customerEmail":"a@example.com"}`, 400, "insufficient_inventory"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				a := s.order(t, c.body)
				assert.Equal(t, c.status, a.status, a.body)
				var e struct{ Error, Code string }
				require.NoError(t, json.Unmarshal([]byte(a.body), &e), "body %q must be JSON", a.body)
				assert.Equal(t, c.code, e.Code)
				assert.NotEmpty(t, e.Error)
			})
		}
		assert.Equal(t, 10, s.stock(t, "product-1"), "no bad request may take stock")
		assert.Empty(t, s.sc.Pub.Published())

		a := s.order(t, `{"productId":"product-1","quantity":11,"customerEmail":"a@example.com"}`)
		assert.JSONEq(t, `{"error":"Insufficient inventory","code":"insufficient_inventory"}`, a.body)
		nf := s.call(t, s.orderApp, http.MethodGet, "orders/order-missing", "", nil)
		assert.Equal(t, http.StatusNotFound, nf.status)
		assert.JSONEq(t, `{"error":"Order not found","code":"order_not_found"}`, nf.body)
		unknown := s.call(t, s.orderApp, http.MethodDelete, "orders/x", "", nil)
		assert.Equal(t, http.StatusNotFound, unknown.status)
		assert.True(t, json.Valid([]byte(unknown.body)))
	})
}

func TestConcurrentOrdersNeverOversell(t *testing.T) {
	bothModes(t, func(t *testing.T, embedded bool) {
		s := newTestShop(t, embedded, nil)
		const n = 64
		answers := make([]answer, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				answers[i] = s.order(t, fmt.Sprintf(`{"productId":"product-1","quantity":1,"customerEmail":"c%d@example.com"}`, i))
			})
		}
		wg.Wait()
		var ids []string
		for _, a := range answers {
			switch a.status {
			case http.StatusOK:
				ids = append(ids, orderID(t, a))
			case http.StatusBadRequest:
				assert.Contains(t, a.body, "Insufficient inventory")
			default:
				t.Errorf("unexpected answer %d %s", a.status, a.body)
			}
		}
		assert.Len(t, ids, 10, "exactly the stock of 10 is confirmed")
		assert.Equal(t, 0, s.stock(t, "product-1"))
		for _, id := range ids {
			assert.Equal(t, 1, s.emails(id), "one email for %s", id)
		}
		assert.Len(t, s.sc.Bindings.Calls("email"), 10)
	})
}

func TestIdempotencyKeyReturnsTheFirstAnswer(t *testing.T) {
	s := newTestShop(t, false, nil)
	h := http.Header{"Idempotency-Key": {"retry-me"}}
	first := s.call(t, s.orderApp, http.MethodPost, "orders", seedOrder, h)
	second := s.call(t, s.orderApp, http.MethodPost, "orders", seedOrder, h)
	assert.Equal(t, orderID(t, first), orderID(t, second))
	assert.Equal(t, 8, s.stock(t, "product-1"), "the retry must not take stock again")
	assert.Len(t, s.sc.Pub.Published(), 1)
	other := s.call(t, s.orderApp, http.MethodPost, "orders", seedOrder, http.Header{"Idempotency-Key": {"another"}})
	assert.NotEqual(t, orderID(t, first), orderID(t, other))
}

func TestFailedCommitGivesTheStockBackThroughTheHoldSweep(t *testing.T) {
	bothModes(t, func(t *testing.T, embedded bool) {
		s := newTestShop(t, embedded, map[string]string{"ORDER_TIMEOUT": "300ms", "HOLD_TTL": "400ms", "OUTBOX_RETRY_AFTER": "1ms", "STOCK_LEASE_UNITS": "0"})
		first := orderID(t, s.order(t, seedOrder)) // registers the outbox owner first
		s.sc.State.FailNextTransact(errors.New("state store down"))
		a := s.order(t, seedOrder)
		assert.Equal(t, http.StatusServiceUnavailable, a.status, a.body)
		assert.Contains(t, a.body, `"code":"unavailable"`)
		assert.NotContains(t, a.body, "state store down", "the cause is logged, not shown")
		assert.Equal(t, 6, s.stock(t, "product-1"), "the outcome of a failed commit is unknown: its stock stays held")

		time.Sleep(500 * time.Millisecond) // past HOLD_TTL
		assert.Equal(t, http.StatusOK, s.sc.FireBinding(context.Background(), s.inventoryApp, "hold-sweep", nil))
		assert.Equal(t, 8, s.stock(t, "product-1"), "the hold sweep finds no order and gives the stock back")
		assert.Equal(t, http.StatusOK, s.sc.FireBinding(context.Background(), s.orderApp, "outbox-sweep", nil))
		for _, p := range s.sc.Pub.Published() {
			assert.Equal(t, first, p.Event.ID, "no event without its order (the first may be redelivered)")
		}
	})
}

func TestTheDistributedOrderServiceLeasesStock(t *testing.T) {
	s := newTestShop(t, false, map[string]string{"CATALOG": "product-1:Laptop:100000", "ORDER_TIMEOUT": "300ms", "HOLD_TTL": "1400ms"})
	var ids []string
	for range 3 {
		ids = append(ids, orderID(t, s.order(t, seedOrder)))
	}
	assert.Equal(t, 99_900, s.stock(t, "product-1"), "one lease of STOCK_LEASE_UNITS served the three orders")
	require.Eventually(t, func() bool { return s.stock(t, "product-1") == 99_994 }, 3*time.Second, 20*time.Millisecond,
		"settled once a second old: the orders' 6 units are sold, the rest is back")
	for _, id := range ids {
		assert.Equal(t, http.StatusOK, s.call(t, s.orderApp, http.MethodGet, "orders/"+id, "", nil).status)
		assert.Equal(t, 1, s.emails(id))
	}

	// What an order-service that died leaves: its lease, and the order it
	// stored from slot 1.
	g := lease.NewGrant(10)
	body, _ := json.Marshal(lease.Request{ProductID: "product-1", Grant: &g})
	a := s.call(t, s.inventoryApp, http.MethodPost, "lease", string(body), internalCall)
	require.Equal(t, http.StatusOK, a.status, a.body)
	assert.JSONEq(t, `{"granted":true,"productName":"Laptop","remainingStock":99984,"settled":0}`, a.body)
	stored := lease.OrderID(g, 1)
	require.NoError(t, s.sc.State.Save(context.Background(), stored,
		[]byte(`{"id":"`+stored+`","productId":"product-1","quantity":4,"customerEmail":"a@example.com","status":"confirmed"}`), ""))
	assert.Equal(t, http.StatusOK, s.sc.FireBinding(context.Background(), s.inventoryApp, "hold-sweep", nil))
	assert.Equal(t, 99_984, s.stock(t, "product-1"), "a young lease is left alone")
	time.Sleep(1500 * time.Millisecond) // past HOLD_TTL
	assert.Equal(t, http.StatusOK, s.sc.FireBinding(context.Background(), s.inventoryApp, "hold-sweep", nil))
	assert.Equal(t, 99_990, s.stock(t, "product-1"), "the sweep looked up the lease's 10 slots: 4 units sold, 6 back")
}

func TestHoldsOfACrashedOrderServiceAreSettledByTheSweep(t *testing.T) {
	bothModes(t, func(t *testing.T, embedded bool) {
		s := newTestShop(t, embedded, map[string]string{"ORDER_TIMEOUT": "300ms", "HOLD_TTL": "400ms", "STOCK_LEASE_UNITS": "0"})
		stored := orderID(t, s.order(t, seedOrder))
		// What an order-service that died after taking stock leaves: a hold
		// for an order that was never stored.
		a := s.call(t, s.inventoryApp, http.MethodPost, "check", `{"productId":"product-1","quantity":3,"orderId":"order-crashed"}`, nil)
		require.Equal(t, http.StatusOK, a.status, a.body)
		assert.Equal(t, 5, s.stock(t, "product-1"))

		assert.Equal(t, http.StatusOK, s.sc.FireBinding(context.Background(), s.inventoryApp, "hold-sweep", nil))
		assert.Equal(t, 5, s.stock(t, "product-1"), "a young hold is left alone")
		time.Sleep(500 * time.Millisecond) // past HOLD_TTL
		assert.Equal(t, http.StatusOK, s.sc.FireBinding(context.Background(), s.inventoryApp, "hold-sweep", nil))
		assert.Equal(t, 8, s.stock(t, "product-1"), "the crashed order's stock is back, the stored order's is not")

		time.Sleep(500 * time.Millisecond) // past HOLD_TTL
		assert.Equal(t, http.StatusOK, s.sc.FireBinding(context.Background(), s.inventoryApp, "hold-sweep", nil))
		assert.Equal(t, 8, s.stock(t, "product-1"), "a stored order's stock is final: %s", stored)
	})
}

func TestPublishFailureIsDeliveredByTheSweep(t *testing.T) {
	s := newTestShop(t, false, map[string]string{"OUTBOX_RETRY_AFTER": "1ms"})
	s.sc.Pub.FailNext(errors.New("broker down"))
	id := orderID(t, s.order(t, seedOrder))
	assert.Empty(t, s.sc.Pub.Published(), "the publish failed")
	assert.Equal(t, 0, s.emails(id))
	time.Sleep(5 * time.Millisecond)

	assert.Equal(t, http.StatusOK, s.sc.FireBinding(context.Background(), s.orderApp, "outbox-sweep", nil))
	pub := s.sc.Pub.Published()
	require.Len(t, pub, 1)
	assert.Equal(t, id, pub[0].Event.ID)
	assert.Equal(t, 1, s.emails(id))
	assert.Len(t, s.sc.Bindings.Calls("orderstore"), 1)

	assert.Equal(t, http.StatusOK, s.sc.FireBinding(context.Background(), s.orderApp, "outbox-sweep", nil))
	assert.Len(t, s.sc.Pub.Published(), 1, "a delivered record is not delivered again")
}

func TestRedeliveredEventSendsOneEmail(t *testing.T) {
	t.Run("files: the one file is rewritten, no state round trip", func(t *testing.T) {
		s := newTestShop(t, false, nil)
		id := orderID(t, s.order(t, seedOrder))
		s.sc.Redeliver(context.Background(), "pubsub", "orders")
		s.sc.Redeliver(context.Background(), "pubsub", "orders")
		names := map[string]bool{}
		for _, c := range s.sc.Bindings.Calls("email") {
			names[c.Metadata["fileName"]] = true
		}
		assert.Equal(t, map[string]bool{id + ".eml": true}, names)
		it, err := s.sc.State.Get(context.Background(), notification.SentKey(id))
		require.NoError(t, err)
		assert.False(t, it.Found, "files need no sent record")
		for _, d := range s.sc.Deliveries() {
			assert.Equal(t, "SUCCESS", d.Status)
		}
	})
	t.Run("smtp: the sent record stops a second message", func(t *testing.T) {
		s := newTestShop(t, false, map[string]string{"EMAIL_BINDING": "email-smtp"})
		id := orderID(t, s.order(t, seedOrder))
		s.sc.Redeliver(context.Background(), "pubsub", "orders")
		s.sc.Redeliver(context.Background(), "pubsub", "orders")
		calls := s.sc.Bindings.Calls("email-smtp")
		require.Len(t, calls, 1, "one message for three deliveries")
		assert.Contains(t, calls[0].Metadata["subject"], id)
		for _, d := range s.sc.Deliveries() {
			assert.Equal(t, "SUCCESS", d.Status)
		}
	})
}

// storeOrder stores an order as an order-service would (the seed's shape),
// so that an unsigned event naming it passes the notification's check.
func (s *testShop) storeOrder(t *testing.T, id, email, product string, quantity int) {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"id": id, "productId": product, "quantity": quantity, "customerEmail": email, "status": "confirmed"})
	require.NoError(t, err)
	require.NoError(t, s.sc.State.Save(context.Background(), id, raw, ""))
}

func TestSeedPublishedAndHandPostedEventsAreNotified(t *testing.T) {
	s := newTestShop(t, false, nil)
	s.storeOrder(t, "order-1700000000000", "seed@example.com", "product-2", 1)
	s.storeOrder(t, "order-hand", "h@example.com", "product-3", 1)
	// What the seed's Node order-service publishes: plain JSON, wrapped by daprd.
	seed := `{"specversion":"1.0","id":"c0ffee","source":"order-service","type":"com.dapr.event.sent","datacontenttype":"application/json",
		"data":{"orderId":"order-1700000000000","customerEmail":"seed@example.com","productId":"product-2","quantity":1}}`
	s.sc.PublishCloudEvent(context.Background(), "pubsub", "orders", []byte(seed))
	assert.Equal(t, 1, s.emails("order-1700000000000"))
	// A CloudEvent posted by hand with data_base64.
	hand := `{"specversion":"1.0","id":"by-hand","source":"curl","type":"x","datacontenttype":"application/json",
		"data_base64":"eyJvcmRlcklkIjoib3JkZXItaGFuZCIsImN1c3RvbWVyRW1haWwiOiJoQGV4YW1wbGUuY29tIiwicHJvZHVjdElkIjoicHJvZHVjdC0zIiwicXVhbnRpdHkiOjF9"}`
	s.sc.PublishCloudEvent(context.Background(), "pubsub", "orders", []byte(hand))
	assert.Equal(t, 1, s.emails("order-hand"))
}

// Anyone who can publish to the topic could have the shop email any address
// it likes; an event that does not match a stored order is refused and
// recorded, on the orders topic and on its dead-letter topic alike.
func TestForgedOrderEventsAreRefused(t *testing.T) {
	for _, embedded := range []bool{false, true} {
		t.Run(map[bool]string{false: "distributed", true: "embedded"}[embedded], func(t *testing.T) {
			s := newTestShop(t, embedded, nil)
			real := orderID(t, s.order(t, seedOrder))
			require.Equal(t, 1, s.emails(real))
			for _, c := range []struct{ id, topic, data string }{
				{"forged-unknown", "orders", `{"orderId":"order-made-up","customerEmail":"victim@example.com","productId":"product-1","quantity":1}`},
				{"forged-address", "orders", `{"orderId":"` + real + `","customerEmail":"victim@example.com","productId":"product-1","quantity":2}`},
				{"forged-dead-letter", "orders-deadletter", `{"orderId":"order-made-up-2","customerEmail":"victim@example.com","productId":"product-1","quantity":1}`},
				{"forged-signature", "orders", `{"orderId":"order-made-up-3","customerEmail":"victim@example.com","productId":"product-1","quantity":1,"signature":"AAAA"}`},
			} {
				ce := `{"specversion":"1.0","id":"` + c.id + `","source":"curl","type":"x","datacontenttype":"application/json","data":` + c.data + `}`
				s.sc.PublishCloudEvent(context.Background(), "pubsub", c.topic, []byte(ce))
				it, err := s.sc.State.Get(context.Background(), notification.RefusedKey(c.id))
				require.NoError(t, err)
				assert.True(t, it.Found, "%s is recorded as refused", c.id)
			}
			assert.Len(t, s.sc.Bindings.Calls("email"), 1, "only the real order was emailed")
			assert.Equal(t, 1, s.emails(real))
		})
	}
}

// Routes only the shop's functions may call (the inventory's, and the order
// function's bulk lookup) refuse a caller without the internal credential,
// whatever it sends, and change nothing.
func TestInternalRoutesRefuseCallersWithoutTheCredential(t *testing.T) {
	s := newTestShop(t, false, nil)
	before := s.stock(t, "product-1")
	for _, c := range []struct{ path, body string }{
		{"lease", `{"productId":"product-1","quantity":5}`},
		{"reserve", `{"orders":[{"orderId":"order-x","productId":"product-1","quantity":5}]}`},
		{"confirm", `{"orders":[{"orderId":"order-x","productId":"product-1"}]}`},
	} {
		for name, h := range map[string]http.Header{
			"none":  nil,
			"wrong": {http.CanonicalHeaderKey(runtime.InternalTokenHeader): {"guess"}},
		} {
			a := s.call(t, s.inventoryApp, http.MethodPost, c.path, c.body, h)
			assert.Equal(t, http.StatusForbidden, a.status, "%s with %s credential: %s", c.path, name, a.body)
			assert.JSONEq(t, `{"error":"POST /`+c.path+` is internal: only the deployment's own functions may call it","code":"internal_route"}`, a.body)
		}
	}
	assert.Equal(t, before, s.stock(t, "product-1"), "no stock moved")
	stored := orderID(t, s.order(t, seedOrder))
	lookup := `{"ids":["` + stored + `"]}`
	for name, h := range map[string]http.Header{"none": nil, "wrong": {http.CanonicalHeaderKey(runtime.InternalTokenHeader): {"guess"}}} {
		a := s.call(t, s.orderApp, http.MethodPost, "orders/lookup", lookup, h)
		assert.Equal(t, http.StatusForbidden, a.status, "orders/lookup with %s credential: %s", name, a.body)
		assert.Contains(t, a.body, `"code":"internal_route"`)
	}
	found := s.call(t, s.orderApp, http.MethodPost, "orders/lookup", lookup, internalCall)
	require.Equal(t, http.StatusOK, found.status, found.body)
	assert.Contains(t, found.body, stored, "the credential opens the order function's lookup too")
	before = s.stock(t, "product-1")
	ok := s.call(t, s.inventoryApp, http.MethodPost, "reserve", `{"orders":[{"orderId":"order-x","productId":"product-1","quantity":5}]}`, internalCall)
	assert.Equal(t, http.StatusOK, ok.status, "the credential opens it: %s", ok.body)
	bad := s.call(t, s.inventoryApp, http.MethodPost, "confirm", `{"orders":[]}`, internalCall)
	assert.Equal(t, http.StatusBadRequest, bad.status, "past the credential, the body is checked as ever: %s", bad.body)
	assert.Contains(t, bad.body, `"code":"invalid_confirmations"`)
	assert.Equal(t, before-5, s.stock(t, "product-1"))
}

func TestMalformedEventIsDeadLettered(t *testing.T) {
	s := newTestShop(t, false, nil)
	bad := `{"specversion":"1.0","id":"bad-1","source":"curl","type":"x","datacontenttype":"application/json","data":{"customerEmail":42}}`
	s.sc.PublishCloudEvent(context.Background(), "pubsub", "orders", []byte(bad))
	var statuses []string
	for _, d := range s.sc.Deliveries() {
		if d.AppID == s.notificationApp { // functions shop new added may subscribe too
			statuses = append(statuses, d.Topic+":"+d.Status)
		}
	}
	assert.Equal(t, []string{"orders:DROP", "orders-deadletter:SUCCESS"}, statuses)
	it, err := s.sc.State.Get(context.Background(), notification.DeadLetterKey("bad-1"))
	require.NoError(t, err)
	assert.True(t, it.Found, "the dead-letter handler records the event")
	assert.Contains(t, string(it.Value), "customerEmail")
}

// daprd dead-letters events it could not deliver in time (the app was down),
// valid ones too: those are sent after all.
func TestValidEventOnTheDeadLetterTopicIsSent(t *testing.T) {
	s := newTestShop(t, false, nil)
	s.storeOrder(t, "order-late", "late@example.com", "product-1", 1)
	ce := `{"specversion":"1.0","id":"order-late","source":"order-service","type":"com.daprfn.order.confirmed","datacontenttype":"application/json","data":{"orderId":"order-late","customerEmail":"late@example.com","productId":"product-1","quantity":1}}`
	s.sc.PublishCloudEvent(context.Background(), "pubsub", "orders-deadletter", []byte(ce))
	assert.Equal(t, 1, s.emails("order-late"))
	it, err := s.sc.State.Get(context.Background(), notification.DeadLetterKey("order-late"))
	require.NoError(t, err)
	assert.False(t, it.Found, "a valid order event is not an operator's problem")
}

// A dead-lettered event is decoded as the orders topic decodes it: data
// published as a JSON string holding the order (which the topic accepts) is
// sent, and data the topic drops is recorded.
func TestDeadLetterDecodesLikeTheOrdersTopic(t *testing.T) {
	s := newTestShop(t, false, nil)
	s.storeOrder(t, "order-q", "q@example.com", "", 0)
	text := `{"specversion":"1.0","id":"order-q","source":"curl","type":"x","datacontenttype":"application/json","data":"{\"orderId\":\"order-q\",\"customerEmail\":\"q@example.com\"}"}`
	s.sc.PublishCloudEvent(context.Background(), "pubsub", "orders-deadletter", []byte(text))
	assert.Equal(t, 1, s.emails("order-q"), "an order published as text is sent")

	bad := `{"specversion":"1.0","id":"bad-q","source":"curl","type":"x","datacontenttype":"application/json","data":{"orderId":"../q","customerEmail":"q@example.com"}}`
	s.sc.PublishCloudEvent(context.Background(), "pubsub", "orders-deadletter", []byte(bad))
	assert.Len(t, s.sc.Bindings.Calls("email"), 1, "poison is not sent")
	it, err := s.sc.State.Get(context.Background(), notification.DeadLetterKey("bad-q"))
	require.NoError(t, err)
	assert.True(t, it.Found, "poison is recorded for an operator")
}

func TestTransientEmailFailureIsRetried(t *testing.T) {
	s := newTestShop(t, false, nil)
	s.sc.Bindings.FailNext("email", errors.New("mail server down"))
	id := orderID(t, s.order(t, seedOrder))
	assert.Equal(t, 0, s.emails(id))
	var first []string
	for _, d := range s.sc.Deliveries() {
		if d.AppID == s.notificationApp {
			first = append(first, d.Status)
		}
	}
	require.NotEmpty(t, first)
	assert.Equal(t, "RETRY", first[0])
	s.sc.Redeliver(context.Background(), "pubsub", "orders")
	assert.Equal(t, 1, s.emails(id))
}

func TestRestockTopsUpAndIsIdempotent(t *testing.T) {
	bothModes(t, func(t *testing.T, embedded bool) {
		s := newTestShop(t, embedded, map[string]string{"RESTOCK_LEVEL": "20", "RESTOCK_EVERY": "0"})
		orderID(t, s.order(t, `{"productId":"product-2","quantity":45,"customerEmail":"a@example.com"}`))
		assert.Equal(t, 5, s.stock(t, "product-2"))
		// The order's hold is confirmed after its answer, with a write of
		// its own: wait for it, so that it does not land between the
		// restocks below.
		require.Eventually(t, func() bool {
			it, err := s.sc.State.Get(context.Background(), inventory.Key("product-2"))
			require.NoError(t, err)
			var p inventory.Product
			require.NoError(t, json.Unmarshal(it.Value, &p))
			return len(p.Holds) == 0 && len(p.Leases) == 0
		}, 5*time.Second, 5*time.Millisecond)
		assert.Equal(t, http.StatusOK, s.sc.FireBinding(context.Background(), s.inventoryApp, "restock", nil))
		assert.Equal(t, 20, s.stock(t, "product-1"), "topped up to the level")
		assert.Equal(t, 20, s.stock(t, "product-2"))
		assert.Equal(t, 25, s.stock(t, "product-3"), "never lowered")
		before, err := s.sc.State.BulkGet(context.Background(), []string{inventory.Key("product-1"), inventory.Key("product-2"), inventory.Key("product-3")})
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, s.sc.FireBinding(context.Background(), s.inventoryApp, "restock", nil))
		after, err := s.sc.State.BulkGet(context.Background(), []string{inventory.Key("product-1"), inventory.Key("product-2"), inventory.Key("product-3")})
		require.NoError(t, err)
		for i := range before {
			assert.Equal(t, before[i].ETag, after[i].ETag, "the second restock writes nothing")
		}
	})
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	t.Setenv("APP_ID", "")
	_, err := loadConfig()
	require.ErrorContains(t, err, "APP_ID is empty")
	t.Setenv("APP_ID", "order-service")
	t.Setenv("FUNCTIONS", "order,billing-x")
	_, err = loadConfig()
	require.ErrorContains(t, err, `FUNCTIONS: unknown function "billing-x": want any of `+strings.Join(functionNames(), ", "))
	t.Setenv("FUNCTIONS", "")
	cfg, err := loadConfig()
	require.NoError(t, err)
	assert.Equal(t, functionNames(), cfg.Functions, "every function of the table by default")

	t.Setenv("ORDER_TIMEOUT", "20s")
	t.Setenv("HOLD_TTL", "20500ms")
	_, err = loadConfig()
	require.Error(t, err, "a lease's orders may still be stored after HOLD_TTL")
	assert.Contains(t, err.Error(), "STOCK_LEASE_UNITS")
	t.Setenv("STOCK_LEASE_UNITS", "0")
	_, err = loadConfig()
	require.NoError(t, err, "without leases HOLD_TTL only has to exceed ORDER_TIMEOUT")
	t.Setenv("HOLD_TTL", "60s")
	t.Setenv("STOCK_LEASE_UNITS", "-1")
	_, err = loadConfig()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "STOCK_LEASE_UNITS")
	t.Setenv("STOCK_LEASE_UNITS", "100")

	t.Setenv("FUNCTIONS", "order,billing")
	_, err = loadConfig()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "billing")
	assert.Contains(t, err.Error(), "FUNCTIONS")

	t.Setenv("FUNCTIONS", "order,notification")
	t.Setenv("NOTIFICATION_ROUTE", "/orders")
	cfg, err = loadConfig()
	require.NoError(t, err)
	app := runtime.New(runtime.Options{})
	sc := runtimetest.New()
	_, err = register(app, cfg, ports{state: sc.State, notifyState: sc.State, pub: sc.Pub, out: sc.Bindings, invoke: sc, comps: fakeComponents}, slog.New(slog.DiscardHandler))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "NOTIFICATION_ROUTE")
}
