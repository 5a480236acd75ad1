package storefront

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/functions/notification"
	"github.com/daprfn/shop/functions/orderevent"
	"github.com/daprfn/shop/runtime"
	"github.com/daprfn/shop/runtime/metrics"
)

// fakeShop answers the storefront's invocations as the other functions
// would, and records them.
type fakeShop struct {
	mu       sync.Mutex
	calls    []string // "app verb method"
	stock    int
	orderErr error
}

func (f *fakeShop) Invoke(_ context.Context, appID, verb, method string, body []byte) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, appID+" "+verb+" "+method)
	switch {
	case method == "inventory":
		return json.Marshal(map[string]any{"product-2": map[string]any{"name": "Mouse", "stock": 50}, "product-1": map[string]any{"name": "Laptop", "stock": f.stock}})
	case method == "orders" && f.orderErr != nil:
		return nil, f.orderErr
	case method == "orders":
		f.stock -= 2
		return []byte(`{"orderId":"order-1","status":"Order created successfully"}`), nil
	case method == metrics.CountersMethod && appID == "down-service":
		return nil, errors.New("no such app")
	case method == metrics.CountersMethod:
		return json.Marshal(metrics.Counters{AppID: appID, Functions: []metrics.FunctionCounter{{Trigger: "invoke", Name: "POST /orders", Success: 3, P50Ms: 1.5, P99Ms: 9}}})
	}
	return nil, &bindings.InvokeError{AppID: appID, Method: method, Status: 404, Body: `{"error":"no route","code":"no_route"}`}
}

func (f *fakeShop) count(call string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == call {
			n++
		}
	}
	return n
}

var (
	orderKey = orderevent.Key("internal")
	emailKey = notification.SentSigningKey("internal")
)

func newService(t *testing.T, f *fakeShop, cfg Config) *Service {
	t.Helper()
	cfg.RefreshEvery = cmp.Or(cfg.RefreshEvery, 5*time.Second)
	cfg.History = cmp.Or(cfg.History, 100)
	s, err := New(cfg, Shop{Invoker: f, Orders: "order-service", Inventory: "inventory-service",
		Apps: []string{"order-service", "down-service"}, OrderKey: orderKey, EmailKey: emailKey}, nil)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func (f *fakeShop) failOrders(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.orderErr = err
}

// serve serves s's page for the test; at its end the storefront closes
// first, ending the streams the server would otherwise wait for.
func serve(t *testing.T, s *Service) *httptest.Server {
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		s.Close()
		srv.Close()
	})
	return srv
}

// sse is one page's stream, read event by event.
type sse struct {
	body io.Closer
	r    *bufio.Reader
}

type event struct{ id, name, data string }

func openEvents(t *testing.T, url, lastEventID string) *sse {
	t.Helper()
	req, err := http.NewRequest("GET", url+"/events", nil)
	require.NoError(t, err)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	t.Cleanup(func() { resp.Body.Close() })
	return &sse{body: resp.Body, r: bufio.NewReader(resp.Body)}
}

// next reads the next event (comments and the retry line skipped).
func (s *sse) next(t *testing.T) event {
	t.Helper()
	var e event
	for {
		line, err := s.r.ReadString('\n')
		require.NoError(t, err)
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && e.name != "":
			return e
		case strings.HasPrefix(line, "id: "):
			e.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			e.name = line[7:]
		case strings.HasPrefix(line, "data: "):
			e.data = line[6:]
		}
	}
}

// until reads events until one named name for which ok holds.
func (s *sse) until(t *testing.T, name string, ok func(data string) bool) event {
	t.Helper()
	for {
		if e := s.next(t); e.name == name && ok(e.data) {
			return e
		}
	}
}

func signedOrder(id string) runtime.Event[orderevent.Event] {
	o := orderevent.Event{OrderID: id, CustomerEmail: "a@example.com", ProductID: "product-1", Quantity: 2}
	return runtime.Event[orderevent.Event]{EventMeta: runtime.EventMeta{ID: id}, Data: o.Signed(orderKey)}
}

func emailsSent(ids ...string) runtime.Event[notification.EmailsSent] {
	var e notification.EmailsSent
	for _, id := range ids {
		e.Emails = append(e.Emails, notification.EmailSent{OrderID: id, To: "a@example.com", Subject: "Order confirmation " + id, SentAt: time.Now()})
	}
	return runtime.Event[notification.EmailsSent]{EventMeta: runtime.EventMeta{ID: "emails-1"}, Data: e.Signed(emailKey)}
}

// A page sees the stock, an order placed from it go through placed, stored
// and emailed with the stock dropping, and every app's counters.
func TestAPageFollowsAnOrderFromPlacedToEmailed(t *testing.T) {
	f := &fakeShop{stock: 10}
	s := newService(t, f, Config{})
	s.Start()
	srv := serve(t, s)

	page := openEvents(t, srv.URL, "")
	stock := page.until(t, eventStock, func(string) bool { return true })
	assert.JSONEq(t, `{"products":[{"id":"product-1","name":"Laptop","stock":10},{"id":"product-2","name":"Mouse","stock":50}]}`, stock.data, "sorted by id")
	counters := page.until(t, eventCounters, func(string) bool { return true })
	assert.Contains(t, counters.data, `"appId":"order-service","functions":[{"trigger":"invoke","name":"POST /orders","success":3`)
	assert.Contains(t, counters.data, `"appId":"down-service","functions":[],"error":"no counters`)

	resp, err := http.Post(srv.URL+"/orders", "application/json", strings.NewReader(`{"productId":"product-1","quantity":2,"customerEmail":"a@example.com"}`))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.JSONEq(t, `{"orderId":"order-1","status":"Order created successfully"}`, string(body))
	assert.Equal(t, 1, f.count("order-service POST orders"), "placed through the order function")

	placed := page.until(t, eventOrder, func(string) bool { return true })
	assert.Contains(t, placed.data, `"orderId":"order-1","step":"placed","productId":"product-1","quantity":2`)
	ev := signedOrder("order-1")
	ev.Time = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC) // when the order function published it
	require.NoError(t, s.OrderStored(context.Background(), ev))
	stored := page.until(t, eventOrder, func(string) bool { return true })
	assert.Contains(t, stored.data, `"step":"stored"`)
	assert.Contains(t, stored.data, `"at":"2026-12-01T10:00:00Z"`, "stored when its event was published")
	require.NoError(t, s.EmailsSent(context.Background(), emailsSent("order-1")))
	emailed := page.until(t, eventOrder, func(string) bool { return true })
	assert.Contains(t, emailed.data, `"orderId":"order-1","step":"emailed","to":"a@example.com","subject":"Order confirmation order-1"`)
	page.until(t, eventStock, func(d string) bool { return strings.Contains(d, `"stock":8`) })

	for _, e := range []event{placed, stored, emailed} {
		assert.NotEmpty(t, e.id, "feed events carry an id to resume from")
	}
	assert.NotEqual(t, placed.id, stored.id)
}

// A page that reconnects with Last-Event-ID gets only what it missed; one
// from another run of the storefront (or none) gets the recent events; the
// history is bounded, and a page that missed more than it holds is told.
func TestAReconnectingPageGetsWhatItMissed(t *testing.T) {
	s := newService(t, &fakeShop{stock: 10}, Config{History: 3})
	srv := serve(t, s)
	ctx := context.Background()

	require.NoError(t, s.OrderStored(ctx, signedOrder("order-1")))
	first := openEvents(t, srv.URL, "")
	e1 := first.until(t, eventOrder, func(string) bool { return true })
	assert.Contains(t, e1.data, "order-1")

	require.NoError(t, s.OrderStored(ctx, signedOrder("order-2")))
	require.NoError(t, s.OrderStored(ctx, signedOrder("order-3")))
	again := openEvents(t, srv.URL, e1.id)
	assert.Contains(t, again.until(t, eventOrder, func(string) bool { return true }).data, "order-2", "the first it missed")
	assert.Contains(t, again.until(t, eventOrder, func(string) bool { return true }).data, "order-3")

	fresh := openEvents(t, srv.URL, "another-run-17")
	assert.Contains(t, fresh.until(t, eventOrder, func(string) bool { return true }).data, "order-1", "an unknown id replays what is kept")

	for _, id := range []string{"order-4", "order-5", "order-6"} {
		require.NoError(t, s.OrderStored(ctx, signedOrder(id)))
	}
	late := openEvents(t, srv.URL, e1.id)
	skipped := late.next(t)
	assert.Equal(t, eventSkipped, skipped.name, "it missed order-2 and -3, which the history of 3 no longer holds")
	assert.JSONEq(t, `{"events":2}`, skipped.data)
	assert.Contains(t, late.next(t).data, "order-4")
}

// Anyone may publish to a topic: only events the order function and the
// notification signed are shown; a dead letter is shown as text, cut short.
func TestOnlySignedEventsAreShown(t *testing.T) {
	s := newService(t, &fakeShop{stock: 10}, Config{})
	ctx := context.Background()
	forged := signedOrder("order-9")
	forged.Data.CustomerEmail = "victim@example.com"
	require.NoError(t, s.OrderStored(ctx, forged))
	unsigned := emailsSent("order-9")
	unsigned.Data.Signature = ""
	require.NoError(t, s.EmailsSent(ctx, unsigned))
	p := &page{}
	assert.Empty(t, string(s.feed.next(nil, p, 50)), "nothing shown")

	require.NoError(t, s.DeadLettered(ctx, runtime.Event[[]byte]{EventMeta: runtime.EventMeta{ID: "e-1", Source: "x", Type: "t"},
		Data: append([]byte("<img src=x onerror=alert(1)>\xff"), strings.Repeat("y", 400)...)}))
	out := string(s.feed.next(nil, p, 50))
	assert.Contains(t, out, `event: deadletter`)
	var d DeadLetter
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(out[strings.Index(out, "data: ")+6:])), &d))
	assert.True(t, strings.HasPrefix(d.Data, "<img src=x onerror=alert(1)>\uFFFD"), "as text, invalid UTF-8 replaced: %q", d.Data)
	assert.LessOrEqual(t, len(d.Data), maxDeadLetterData+2)

	require.NoError(t, s.DeadLettered(ctx, runtime.Event[[]byte]{EventMeta: runtime.EventMeta{ID: "e-2"},
		Data: []byte(`{"orderId":"\u003cimg\u003e", "quantity": 12345678901234567890}`)}))
	out = string(s.feed.next(nil, p, 50))
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(out[strings.Index(out, "data: ")+6:])), &d))
	assert.Equal(t, `{"orderId":"<img>","quantity":12345678901234567890}`, d.Data, "JSON as people read it, numbers kept")
}

// The order function's own refusal reaches the page as it is; a page
// sending no JSON is refused; a failing order function is a 503 of ours.
func TestTheOrderFunctionsErrorsReachThePage(t *testing.T) {
	f := &fakeShop{stock: 10}
	s := newService(t, f, Config{})
	srv := serve(t, s)
	post := func(ct, body string) (int, string) {
		resp, err := http.Post(srv.URL+"/orders", ct, strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		return resp.StatusCode, string(b)
	}

	f.failOrders(&bindings.InvokeError{AppID: "order-service", Method: "orders", Status: 400,
		Body: `{"error":"quantity must be a whole number from 1 to 1000","code":"invalid_quantity"}`})
	status, body := post("application/json", `{"productId":"product-1","quantity":0,"customerEmail":"a@example.com"}`)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.JSONEq(t, `{"error":"quantity must be a whole number from 1 to 1000","code":"invalid_quantity"}`, body)

	f.failOrders(errors.New("connection refused"))
	status, body = post("application/json", `{"productId":"product-1","quantity":1,"customerEmail":"a@example.com"}`)
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Contains(t, body, `"code":"unavailable"`)
	assert.NotContains(t, body, "connection refused", "the cause is logged, not shown")

	status, body = post("text/plain", `{"productId":"product-1"}`)
	assert.Equal(t, http.StatusUnsupportedMediaType, status, "a form another site posts is refused")
	assert.Contains(t, body, `"code":"unsupported_media_type"`)
	status, _ = post("application/json", strings.Repeat(" ", maxOrderBody+1))
	assert.Equal(t, http.StatusRequestEntityTooLarge, status)
	assert.Equal(t, 2, f.count("order-service POST orders"), "the refused requests never reached the order function")
	p := &page{}
	assert.NotContains(t, string(s.feed.next(nil, p, 50)), "placed", "nothing was placed")
}

func TestThePageIsEmbeddedAndKeptToItself(t *testing.T) {
	s := newService(t, &fakeShop{}, Config{})
	srv := serve(t, s)
	for path, want := range map[string]string{"/": `<label for="quantity">Quantity</label>`, "/app.js": "new EventSource", "/style.css": ":focus-visible"} {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.Contains(t, string(b), want, path)
		assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "script-src 'self'", path)
		assert.NotContains(t, string(b), "http://", "%s fetches nothing from elsewhere", path)
		assert.NotContains(t, string(b), "https://", "%s fetches nothing from elsewhere", path)
	}
	assert.NotContains(t, mustGet(t, srv.URL+"/app.js"), "innerHTML", "everything is shown as text")
}

func mustGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// The storefront reads the stock and counters only while a page is open:
// at once when one opens, every RefreshEvery, and the stock after orders
// at most once a second however many there are.
func TestStockAndCountersAreReadOnlyWhileAPageIsOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeShop{stock: 10}
		s := newService(t, f, Config{RefreshEvery: 5 * time.Second})
		s.Start()
		const stock, counters = "inventory-service GET inventory", "order-service GET runtime/metrics"

		// The ticker ticks every 5 s from the start; the page opens
		// between two ticks.
		time.Sleep(61 * time.Second)
		synctest.Wait()
		assert.Zero(t, f.count(stock), "no page: nothing read")
		require.NoError(t, s.OrderStored(context.Background(), signedOrder("order-1")))
		synctest.Wait()
		assert.Zero(t, f.count(stock))

		leave, ok := s.feed.join()
		require.True(t, ok)
		synctest.Wait()
		assert.Equal(t, 1, f.count(stock), "read when the first page opens")
		assert.Equal(t, 1, f.count(counters))

		for _, id := range []string{"order-2", "order-3", "order-4"} {
			require.NoError(t, s.OrderStored(context.Background(), signedOrder(id)))
		}
		time.Sleep(stockGap / 2)
		synctest.Wait()
		assert.Equal(t, 1, f.count(stock), "not sooner than a second after the last read")
		time.Sleep(stockGap / 2)
		synctest.Wait()
		assert.Equal(t, 2, f.count(stock), "three orders, one read")

		time.Sleep(3500 * time.Millisecond) // past the tick at 65 s
		synctest.Wait()
		assert.Equal(t, 3, f.count(stock), "and every RefreshEvery")
		assert.Equal(t, 2, f.count(counters))

		leave()
		time.Sleep(time.Minute)
		synctest.Wait()
		assert.Equal(t, 3, f.count(stock), "the page closed: nothing read")
		assert.Equal(t, 2, f.count(counters))
	})
}
