package order

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/bindings/memory"
	"github.com/daprfn/shop/functions/inventory"
	"github.com/daprfn/shop/internal/daprtest"
	"github.com/daprfn/shop/runtime"
	"github.com/daprfn/shop/runtime/runtimetest"
)

// recordingInvoker passes calls on and records each method with the number
// of orders its body carried; hold, while set, keeps calls waiting.
type recordingInvoker struct {
	next bindings.Invoker
	mu   sync.Mutex
	log  []string
	hold chan struct{}
}

func (r *recordingInvoker) Invoke(ctx context.Context, appID, verb, method string, body []byte) ([]byte, error) {
	var b struct {
		Orders, Confirm, Settle []json.RawMessage
		Grant                   json.RawMessage
	}
	_ = json.Unmarshal(body, &b)
	call := method + ":" + itoa(max(len(b.Orders), 1))
	if len(b.Confirm) > 0 {
		call += "+confirm:" + itoa(len(b.Confirm))
	}
	if method == "lease" { // "lease:grant", "lease:settle:N", "lease:grant+settle:N"
		var parts []string
		if len(b.Grant) > 0 && string(b.Grant) != "null" {
			parts = append(parts, "grant")
		}
		if len(b.Settle) > 0 {
			parts = append(parts, "settle:"+itoa(len(b.Settle)))
		}
		call = "lease:" + strings.Join(parts, "+")
	}
	r.mu.Lock()
	r.log = append(r.log, call)
	hold, next := r.hold, r.next
	r.mu.Unlock()
	if hold != nil {
		<-hold
	}
	return next.Invoke(ctx, appID, verb, method, body)
}

// route sends the calls from now on to next.
func (r *recordingInvoker) route(next bindings.Invoker) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next = next
}

func (r *recordingInvoker) calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.log...)
}

func itoa(n int) string { return strconv.Itoa(n) }

// recordedStock returns an InvokeStock calling next through a
// recordingInvoker (holding calls back when hold is set), closed when the
// test ends.
func recordedStock(t *testing.T, next bindings.Invoker, hold bool, log *slog.Logger) (*InvokeStock, *recordingInvoker) {
	t.Helper()
	rec := &recordingInvoker{next: next}
	if hold {
		rec.hold = make(chan struct{})
	}
	stock := NewInvokeStock(rec, "inventory-service", log)
	t.Cleanup(stock.Close)
	return stock, rec
}

// release lets the held calls and those after them through.
func (r *recordingInvoker) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	close(r.hold)
	r.hold = nil
}

// inventoryApp serves the inventory function as the inventory-service; seed
// keeps only the seed's POST /check.
func inventoryApp(t *testing.T, seed bool) (*runtimetest.Sidecar, *inventory.Service) {
	t.Helper()
	inv, err := inventory.New(memory.NewStore(), inventory.Config{Catalog: []inventory.Item{{ID: "product-1", Name: "Laptop", Stock: 100}}})
	require.NoError(t, err)
	app := runtime.New(runtime.Options{})
	runtime.Invoke(app, "POST /check", inv.Check)
	if !seed {
		runtime.Invoke(app, "POST /reserve", inv.Reserve)
		runtime.Invoke(app, "POST /confirm", inv.Confirm)
	}
	sc := runtimetest.New()
	sc.Serve("inventory-service", app)
	return sc, inv
}

func stockLeft(t *testing.T, inv *inventory.Service) int {
	t.Helper()
	l, err := inv.List(context.Background(), struct{}{})
	require.NoError(t, err)
	return l["product-1"].Stock
}

func TestTakesArrivingDuringACallGoTogetherInTheNext(t *testing.T) {
	sc, inv := inventoryApp(t, false)
	stock, rec := recordedStock(t, sc, true, nil)
	ctx := context.Background()

	results := make(chan error, 10)
	take := func(i int) {
		a, err := stock.Take(ctx, "order-"+itoa(i), "product-1", 1)
		if err == nil && !a.Available {
			err = assert.AnError
		}
		results <- err
	}
	go take(0)
	require.Eventually(t, func() bool { return len(rec.calls()) == 1 }, 5*time.Second, time.Millisecond, "the first take goes at once")
	for i := 1; i < 10; i++ {
		go take(i)
	}
	require.Eventually(t, func() bool { return stock.takes.queued() == 9 }, 5*time.Second, time.Millisecond)
	rec.release()
	for range 10 {
		require.NoError(t, <-results)
	}
	assert.Equal(t, []string{"reserve:1", "reserve:9"}, rec.calls(), "nine takes queued behind the first call: one call for them")
	assert.Equal(t, 90, stockLeft(t, inv))

	taken := make([]Taken, 10)
	for i := range taken {
		taken[i] = Taken{OrderID: "order-" + itoa(i), ProductID: "product-1"}
	}
	c, err := inv.Confirm(ctx, inventory.ConfirmRequest{Orders: toConfirmations(taken)})
	require.NoError(t, err)
	assert.Equal(t, 10, c.Confirmed, "every take held its order's stock")
}

func toConfirmations(taken []Taken) []inventory.Confirmation {
	out := make([]inventory.Confirmation, len(taken))
	for i, t := range taken {
		out[i] = inventory.Confirmation{OrderID: t.OrderID, ProductID: t.ProductID}
	}
	return out
}

func TestTakeFallsBackToTheSeedsCheck(t *testing.T) {
	seed, seedInv := inventoryApp(t, true)
	var logs daprtest.SyncBuffer
	stock, rec := recordedStock(t, seed, false, slog.New(slog.NewTextHandler(&logs, nil)))
	for i := range 2 {
		a, err := stock.Take(context.Background(), "order-"+itoa(i), "product-1", 3)
		require.NoError(t, err)
		assert.True(t, a.Available)
		assert.Equal(t, "Laptop", a.ProductName)
		stock.Confirm(Taken{OrderID: "order-" + itoa(i), ProductID: "product-1"})
	}
	require.Eventually(t, func() bool { return len(rec.calls()) == 4 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, []string{"reserve:1", "check:1", "check:1", "confirm:2"}, rec.calls(), "no /reserve: /check per order from then on")
	assert.Equal(t, 94, stockLeft(t, seedInv))
	stock.Confirm(Taken{OrderID: "order-2", ProductID: "product-1"})
	require.Eventually(t, func() bool { return len(rec.calls()) == 5 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, "confirm:1", rec.calls()[4], "confirmations keep going to the seed's inventory")

	// Ours back in the seed's place: its /check holds the stock, and the
	// confirmations that kept going reach it.
	ours, ourInv := inventoryApp(t, false)
	rec.route(ours)
	_, err := stock.Take(context.Background(), "order-0", "product-1", 1)
	require.NoError(t, err)
	stock.Confirm(Taken{OrderID: "order-0", ProductID: "product-1"})
	stock.Close()
	assert.Equal(t, []string{"check:1", "confirm:1"}, rec.calls()[5:])
	assert.Zero(t, stillHeld(t, ourInv, 1), "the hold our /check made was confirmed")
	assert.Equal(t, 1, strings.Count(logs.String(), "has no POST /confirm"), "the seed's 404 for /confirm is logged once")
	assert.NotContains(t, logs.String(), "hold sweep", "no hold sweep is promised where there are no holds")
}

func TestTakeOfAnUnknownProductIsNotFound(t *testing.T) {
	sc, _ := inventoryApp(t, false)
	stock := NewInvokeStock(sc, "inventory-service", nil)
	_, err := stock.Take(context.Background(), "order-1", "product-9", 1)
	assert.Equal(t, 404, runtime.Classify(err).Status)

	a, err := stock.Take(context.Background(), "order-2", "product-1", 101)
	require.NoError(t, err)
	assert.False(t, a.Available, "not enough stock is an answer, not an error")
}

func TestATakerThatGaveUpTakesNothing(t *testing.T) {
	sc, inv := inventoryApp(t, false)
	stock, rec := recordedStock(t, sc, true, nil)
	first := make(chan error, 1)
	go func() { _, err := stock.Take(context.Background(), "order-1", "product-1", 1); first <- err }()
	require.Eventually(t, func() bool { return len(rec.calls()) == 1 }, 5*time.Second, time.Millisecond)

	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() { _, err := stock.Take(ctx, "order-2", "product-1", 1); gaveUp <- err }()
	require.Eventually(t, func() bool { return stock.takes.queued() == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-gaveUp, context.Canceled)
	rec.release()
	require.NoError(t, <-first)
	assert.Equal(t, []string{"reserve:1"}, rec.calls(), "the cancelled take was never sent")
	assert.Equal(t, 99, stockLeft(t, inv))
}

// takeOrders takes one of product-1 for each of order-0 to order-<n-1>,
// each confirmed once taken when confirm is set.
func takeOrders(t *testing.T, stock *InvokeStock, n int, confirm bool) {
	t.Helper()
	for i := range n {
		_, err := stock.Take(context.Background(), "order-"+itoa(i), "product-1", 1)
		require.NoError(t, err)
		if confirm {
			stock.Confirm(Taken{OrderID: "order-" + itoa(i), ProductID: "product-1"})
		}
	}
}

// stillHeld confirms order-0 to order-<n-1> at the inventory itself and says
// how many of them still held stock.
func stillHeld(t *testing.T, inv *inventory.Service, n int) int {
	t.Helper()
	taken := make([]Taken, n)
	for i := range taken {
		taken[i] = Taken{OrderID: "order-" + itoa(i), ProductID: "product-1"}
	}
	c, err := inv.Confirm(context.Background(), inventory.ConfirmRequest{Orders: toConfirmations(taken)})
	require.NoError(t, err)
	return c.Confirmed
}

func TestConfirmationsRideWithTheNextReserve(t *testing.T) {
	sc, inv := inventoryApp(t, false)
	stock, rec := recordedStock(t, sc, false, nil)
	takeOrders(t, stock, 3, true)
	assert.Equal(t, []string{"reserve:1", "reserve:1+confirm:1", "reserve:1+confirm:1"}, rec.calls(),
		"each stored order's confirmation went with the next take, in no call of its own")
	assert.Equal(t, 1, stillHeld(t, inv, 3), "only the last order's hold was still there")
	assert.Equal(t, 97, stockLeft(t, inv))
}

func TestConfirmationsNoTakeCarriesGoOnTheirOwn(t *testing.T) {
	sc, inv := inventoryApp(t, false)
	stock, rec := recordedStock(t, sc, false, nil)
	takeOrders(t, stock, 2, false)
	stock.Confirm(Taken{OrderID: "order-0", ProductID: "product-1"})
	stock.Confirm(Taken{OrderID: "order-1", ProductID: "product-1"})
	require.Eventually(t, func() bool { return len(rec.calls()) == 3 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, "confirm:2", rec.calls()[2], "both in one /confirm once they waited ConfirmAfter")
	stock.Close() // waits for the /confirm sent, which rec records before it is answered
	assert.Zero(t, stillHeld(t, inv, 2), "both holds were already final")
}

func TestConfirmationsOfAFailedReserveAreSentAgainUnlessRefused(t *testing.T) {
	for status, sentAgain := range map[int32]bool{503: true, 400: false} {
		sc, inv := inventoryApp(t, false)
		flaky := &failingInvoker{next: sc}
		stock := NewInvokeStock(flaky, "inventory-service", nil)
		takeOrders(t, stock, 1, true)
		flaky.status.Store(status)
		_, err := stock.Take(context.Background(), "order-1", "product-1", 1)
		require.Error(t, err)
		flaky.status.Store(0)
		stock.Close() // sends what is queued
		if sentAgain {
			assert.Zero(t, stillHeld(t, inv, 1), "the confirmation the failed call carried was sent again")
		} else {
			assert.Equal(t, 1, stillHeld(t, inv, 1), "a refused call's confirmation is left to the hold sweep, not sent to be refused again")
		}
	}
}

// failingInvoker answers every call with status while it is set.
type failingInvoker struct {
	next   bindings.Invoker
	status atomic.Int32
}

func (f *failingInvoker) Invoke(ctx context.Context, appID, verb, method string, body []byte) ([]byte, error) {
	if st := f.status.Load(); st != 0 {
		return nil, &bindings.InvokeError{AppID: appID, Method: method, Status: int(st), Body: `{"error":"refused"}`}
	}
	return f.next.Invoke(ctx, appID, verb, method, body)
}

func TestConfirmationsGoInTheirOwnCallsToAnInventoryThatIgnoresThem(t *testing.T) {
	inv, err := inventory.New(memory.NewStore(), inventory.Config{Catalog: []inventory.Item{{ID: "product-1", Name: "Laptop", Stock: 100}}})
	require.NoError(t, err)
	app := runtime.New(runtime.Options{})
	type oldRequest struct{ Orders []inventory.CheckRequest }
	type oldResponse struct{ Orders []inventory.Reservation }
	runtime.Invoke(app, "POST /reserve", func(ctx context.Context, in oldRequest) (oldResponse, error) {
		r, err := inv.Reserve(ctx, inventory.ReserveRequest{Orders: in.Orders}) // no confirm field: ignored
		return oldResponse{r.Orders}, err
	})
	runtime.Invoke(app, "POST /confirm", inv.Confirm)
	sc := runtimetest.New()
	sc.Serve("inventory-service", app)
	stock, rec := recordedStock(t, sc, false, nil)

	takeOrders(t, stock, 3, true)
	require.Eventually(t, func() bool { return len(rec.calls()) == 4 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, []string{"reserve:1", "reserve:1+confirm:1", "reserve:1", "confirm:3"}, rec.calls(),
		"once a /reserve answered without its count of confirmations, they go in /confirm")
	stock.Close() // waits for the /confirm sent, which rec records before it is answered
	assert.Zero(t, stillHeld(t, inv, 3), "the ignored confirmation was sent again, with the later ones")
}
