package order

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/bindings/memory"
	"github.com/daprfn/shop/functions/inventory"
	"github.com/daprfn/shop/runtime"
	"github.com/daprfn/shop/runtime/runtimetest"
)

// leasingInventory serves the inventory function, leases included, with
// stock units of product-1; orders, when given, settles leases and holds
// older than a nanosecond in its hold sweep.
func leasingInventory(t *testing.T, stock int, orders ...inventory.OrderLookup) (*runtimetest.Sidecar, *inventory.Service) {
	t.Helper()
	cfg := inventory.Config{Catalog: []inventory.Item{{ID: "product-1", Name: "Laptop", Stock: stock}}}
	if len(orders) > 0 {
		cfg.Orders, cfg.HoldTTL = orders[0], time.Nanosecond
	}
	inv, err := inventory.New(memory.NewStore(), cfg)
	require.NoError(t, err)
	app := runtime.New(runtime.Options{})
	runtime.Invoke(app, "POST /check", inv.Check)
	runtime.Invoke(app, "POST /reserve", inv.Reserve)
	runtime.Invoke(app, "POST /confirm", inv.Confirm)
	runtime.Invoke(app, "POST /lease", inv.Lease)
	sc := runtimetest.New()
	sc.Serve("inventory-service", app)
	return sc, inv
}

// fakeClock is a LeaseStock's clock, moved by the test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// leasedStock returns a LeaseStock of units over next, through a
// recordingInvoker, on a fake clock; it is closed when the test ends.
func leasedStock(t *testing.T, next bindings.Invoker, units int) (*LeaseStock, *recordingInvoker, *fakeClock) {
	t.Helper()
	rec := &recordingInvoker{next: next}
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	perOrder := NewInvokeStock(rec, "inventory-service", nil)
	s := newLeaseStock(InvokeLeaser{Invoker: rec, AppID: "inventory-service"}, units, perOrder, nil, clock.now)
	t.Cleanup(perOrder.Close)
	t.Cleanup(s.Close)
	return s, rec, clock
}

func take(t *testing.T, s Stock, qty int) Availability {
	t.Helper()
	a, err := s.Take(context.Background(), NewID(), "product-1", qty)
	require.NoError(t, err)
	require.True(t, a.Available)
	return a
}

func TestLeaseStockPlacesOrdersWithoutCallingTheInventory(t *testing.T) {
	sc, inv := leasingInventory(t, 10_000)
	s, rec, _ := leasedStock(t, sc, 100)
	ids := map[string]bool{}
	for range 24 { // 48 units: under half the lease, so no next lease is asked for
		a := take(t, s, 2)
		assert.Equal(t, "Laptop", a.ProductName)
		assert.Regexp(t, `^order-[0-9a-f]{32}$`, a.OrderID, "the order is stored under its slot's id")
		ids[a.OrderID] = true
	}
	assert.Len(t, ids, 24)
	assert.Equal(t, []string{"lease:grant"}, rec.calls(), "one call for 24 orders")
	assert.Equal(t, 9_900, stockLeft(t, inv), "the lease's 100 units are taken")
	for id := range ids {
		s.Confirm(Taken{OrderID: id, ProductID: "product-1"})
	}
	s.Close()
	assert.Equal(t, 9_952, stockLeft(t, inv), "settled on close: the 52 units of unused slots come back")
	assert.Equal(t, []string{"lease:grant", "lease:settle:1"}, rec.calls())
}

func TestLeaseStockSettlesALeaseOnceItIsOldWithTheOrdersItStored(t *testing.T) {
	sc, inv := leasingInventory(t, 10_000)
	s, rec, clock := leasedStock(t, sc, 100)
	a := take(t, s, 3)
	unstored := take(t, s, 4)
	s.Confirm(Taken{OrderID: a.OrderID, ProductID: "product-1"})
	clock.add(LeaseLife)
	s.tick(false)
	assert.Equal(t, 9_900, stockLeft(t, inv), "an order in flight keeps its lease from being settled")
	s.Confirm(Taken{OrderID: unstored.OrderID, ProductID: "product-1"})
	s.tick(false)
	assert.Equal(t, 9_993, stockLeft(t, inv), "the lease is settled with its two orders' 7 units")
	assert.Equal(t, []string{"lease:grant", "lease:settle:1"}, rec.calls())

	take(t, s, 1)
	assert.Equal(t, 9_893, stockLeft(t, inv), "the next order asks for a new lease")
}

func TestLeaseStockForgetsALeaseWhoseOrderNeverConfirmed(t *testing.T) {
	sc, inv := leasingInventory(t, 10_000)
	s, rec, clock := leasedStock(t, sc, 100)
	take(t, s, 3) // its commit failed, or its outcome is unknown
	clock.add(LeaseLife)
	s.tick(false)
	clock.add(leaseAbandon)
	s.tick(false)
	s.Close()
	assert.Equal(t, 9_900, stockLeft(t, inv), "the lease is left to the inventory's hold sweep, which looks its orders up")
	assert.Equal(t, []string{"lease:grant"}, rec.calls())
}

func TestLeaseStockSettlesAUsedUpLeaseWithTheNextRequest(t *testing.T) {
	sc, inv := leasingInventory(t, 1_000)
	s, rec, clock := leasedStock(t, sc, 10)
	for i := range 5 {
		a := take(t, s, 2)
		s.Confirm(Taken{OrderID: a.OrderID, ProductID: "product-1"})
		if i == 0 {
			clock.add(LeaseLife / 2) // too slow a product to ask for the next lease ahead
		}
	}
	take(t, s, 1)
	assert.Equal(t, []string{"lease:grant", "lease:grant+settle:1"}, rec.calls(), "the second request carries the first lease's settlement")
	assert.Equal(t, 980, stockLeft(t, inv), "10 units sold, 10 leased anew")
}

// prefetched waits until s holds a lease of product-1 granted ahead.
func prefetched(t *testing.T, s *LeaseStock) {
	t.Helper()
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		pl := s.products["product-1"]
		return pl != nil && pl.next != nil
	}, 5*time.Second, time.Millisecond, "the next lease is asked for and granted ahead")
}

func TestLeaseStockAsksForTheNextLeaseAheadForAProductThatSellsFast(t *testing.T) {
	sc, inv := leasingInventory(t, 1_000)
	s, rec, _ := leasedStock(t, sc, 10)
	var ids []string
	for range 5 { // half the lease at once: it runs out long before its life
		ids = append(ids, take(t, s, 1).OrderID)
	}
	prefetched(t, s)
	assert.Equal(t, 980, stockLeft(t, inv), "two leases taken")
	for range 5 {
		ids = append(ids, take(t, s, 1).OrderID)
	}
	a := take(t, s, 1)
	ids = append(ids, a.OrderID)
	assert.Equal(t, []string{"lease:grant", "lease:grant"}, rec.calls(), "the order after the first lease ran out waited for no call")
	assert.Len(t, slices.Compact(slices.Sorted(slices.Values(ids))), 11, "every order has a slot id of its own")
	for _, id := range ids {
		s.Confirm(Taken{OrderID: id, ProductID: "product-1"})
	}
	s.Close()
	assert.Equal(t, 989, stockLeft(t, inv), "11 units sold; the second lease's 9 unused units came back")
	assert.Equal(t, []string{"lease:grant", "lease:grant", "lease:settle:2"}, rec.calls())
}

func TestLeaseStockGivesBackALeaseAskedForAheadThatNoOrderUsed(t *testing.T) {
	// Half of a 10-unit lease sold and stored at once, the next lease asked
	// for ahead; then the product goes quiet and both leases expire.
	setup := func(t *testing.T) (*LeaseStock, *recordingInvoker, *inventory.Service) {
		sc, inv := leasingInventory(t, 1_000)
		s, rec, clock := leasedStock(t, sc, 10)
		for range 5 {
			a := take(t, s, 1)
			s.Confirm(Taken{OrderID: a.OrderID, ProductID: "product-1"})
		}
		prefetched(t, s)
		clock.add(LeaseLife)
		return s, rec, inv
	}
	t.Run("settled by the tick", func(t *testing.T) {
		s, rec, inv := setup(t)
		s.tick(false)
		assert.Equal(t, 995, stockLeft(t, inv), "5 units sold; the first lease's other 5 and all 10 of the second came back")
		assert.Equal(t, []string{"lease:grant", "lease:grant", "lease:settle:2"}, rec.calls())
	})
	t.Run("settled with the next order's lease request", func(t *testing.T) {
		s, rec, inv := setup(t)
		a := take(t, s, 1)
		s.Confirm(Taken{OrderID: a.OrderID, ProductID: "product-1"})
		assert.Equal(t, []string{"lease:grant", "lease:grant", "lease:grant+settle:2"}, rec.calls(), "a fresh lease, carrying both expired ones' settlements")
		assert.Equal(t, 985, stockLeft(t, inv), "5 units sold from the first lease, the rest of it and all of the second back, a third lease of 10 taken")
	})
}

func TestLeaseStockTakesOrderByOrderWhenTheInventoryWillNotLease(t *testing.T) {
	t.Run("short stock", func(t *testing.T) {
		sc, inv := leasingInventory(t, 1_000) // a lease of 100 needs 1 600
		s, rec, clock := leasedStock(t, sc, 100)
		a := take(t, s, 1)
		assert.Empty(t, a.OrderID, "the order keeps its own id")
		take(t, s, 1)
		assert.Equal(t, []string{"lease:grant", "reserve:1", "reserve:1"}, rec.calls(), "no lease asked again within leaseRetry")
		clock.add(leaseRetry)
		take(t, s, 1)
		assert.Equal(t, "lease:grant", rec.calls()[3])
		assert.Equal(t, 997, stockLeft(t, inv))
	})
	t.Run("more units than a lease", func(t *testing.T) {
		sc, inv := leasingInventory(t, 10_000)
		s, rec, _ := leasedStock(t, sc, 100)
		take(t, s, 101)
		assert.Equal(t, []string{"reserve:1"}, rec.calls())
		assert.Equal(t, 9_899, stockLeft(t, inv))
	})
	t.Run("the seed's inventory", func(t *testing.T) {
		sc, _ := inventoryApp(t, true)
		s, rec, clock := leasedStock(t, sc, 10)
		take(t, s, 1)
		clock.add(leaseRetry)
		take(t, s, 1)
		assert.Equal(t, []string{"lease:grant", "reserve:1", "check:1", "check:1"}, rec.calls(), "asked once, then order by order")
	})
	t.Run("an unknown product", func(t *testing.T) {
		sc, _ := leasingInventory(t, 10_000)
		s, _, _ := leasedStock(t, sc, 100)
		_, err := s.Take(context.Background(), NewID(), "product-9", 1)
		require.Error(t, err)
		assert.Equal(t, 404, runtime.Classify(err).Status)
	})
}

// lostAnswer passes the first n calls on and answers them with an error,
// as a call whose answer was lost.
type lostAnswer struct {
	next bindings.Invoker
	n    atomic.Int32
}

func (l *lostAnswer) Invoke(ctx context.Context, appID, verb, method string, body []byte) ([]byte, error) {
	out, err := l.next.Invoke(ctx, appID, verb, method, body)
	if l.n.Add(-1) >= 0 {
		return nil, errors.New("connection reset")
	}
	return out, err
}

func TestLeaseStockGivesBackAGrantWhoseAnswerWasLost(t *testing.T) {
	sc, inv := leasingInventory(t, 10_000)
	lost := &lostAnswer{next: sc}
	lost.n.Store(1)
	s, rec, clock := leasedStock(t, lost, 100)
	a := take(t, s, 1)
	assert.Empty(t, a.OrderID, "served order by order meanwhile")
	assert.Equal(t, 9_899, stockLeft(t, inv), "the grant was taken all the same")
	clock.add(leaseRetry)
	b := take(t, s, 1)
	assert.NotEmpty(t, b.OrderID)
	assert.Equal(t, 9_899, stockLeft(t, inv), "the next request gave the lost grant's 100 back whole and took a new one's")
	s.Confirm(Taken{OrderID: b.OrderID, ProductID: "product-1"})
	s.Close()
	assert.Equal(t, 9_998, stockLeft(t, inv))
	assert.Equal(t, []string{"lease:grant", "reserve:1", "lease:grant+settle:1", "lease:settle:1"}, rec.calls())
}

func TestLeaseStockUnderConcurrentOrdersSellsExactlyWhatWasStored(t *testing.T) {
	var mu sync.Mutex
	stored := map[string]inventory.StoredOrder{}
	lookup := inventory.OrderLookupFunc(func(_ context.Context, id string) (inventory.StoredOrder, error) {
		mu.Lock()
		defer mu.Unlock()
		return stored[id], nil
	})
	sc, inv := leasingInventory(t, 100_000, lookup)
	s, _, _ := leasedStock(t, sc, 25)
	sold := 0
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				q := 1 + i%3
				a := take(t, s, q)
				if (w+i)%5 == 0 {
					continue // one in five orders fails to be stored
				}
				mu.Lock()
				stored[a.OrderID] = inventory.StoredOrder{Found: true, ProductID: "product-1", Quantity: q}
				sold += q
				mu.Unlock()
				s.Confirm(Taken{OrderID: a.OrderID, ProductID: "product-1"})
			}
		})
	}
	wg.Wait()
	s.Close()
	assert.Less(t, stockLeft(t, inv), 100_000-sold, "leases whose orders failed wait for the hold sweep")
	require.NoError(t, inv.SweepHolds(context.Background(), runtime.BindingEvent[struct{}]{}))
	assert.Equal(t, 100_000-sold, stockLeft(t, inv), "the sweep settles them by looking their slots up: exactly what was stored is sold")
}

func TestLeaseStockClosedWhileALeaseIsAskedForGivesTheGrantBack(t *testing.T) {
	sc, inv := leasingInventory(t, 10_000)
	s, rec, _ := leasedStock(t, sc, 100)
	rec.hold = make(chan struct{})
	took := make(chan Availability, 1)
	go func() {
		a, err := s.Take(context.Background(), NewID(), "product-1", 1)
		assert.NoError(t, err)
		took <- a
	}()
	require.Eventually(t, func() bool { return len(rec.calls()) == 1 }, 5*time.Second, time.Millisecond)
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	require.Eventually(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.closed }, 5*time.Second, time.Millisecond)
	rec.release()
	<-closed
	a := <-took
	assert.Empty(t, a.OrderID, "after Close the order is taken order by order")
	assert.Equal(t, 9_999, stockLeft(t, inv), "the grant that arrived after Close went back whole")
	assert.ElementsMatch(t, []string{"lease:grant", "reserve:1", "lease:settle:1"}, rec.calls())
}
