package lease_test

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/functions/lease"
	"github.com/daprfn/shop/functions/orderevent"
	"github.com/daprfn/shop/functions/stock"
	"github.com/daprfn/shop/internal/stocktest"
	"github.com/daprfn/shop/runtime"
)

// These tests run in synctest bubbles: time passes on the bubble's clock,
// and the Stock's ticker ticks only when a test sleeps. A test that moves a
// lease's clock without ticking gives the Stock a fakeClock.

// fakeClock is a Stock's clock, moved by the test.
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

// leased returns a Stock of units over the inventory next, through a
// Recorder, falling back to a stock.Client; now, when set, is its clock.
// Both are closed when the test ends.
func leased(t *testing.T, next bindings.Invoker, units int, now func() time.Time) (*lease.Stock, *stocktest.Recorder) {
	t.Helper()
	rec := stocktest.NewRecorder(next)
	perOrder := stock.NewClient(rec, stocktest.AppID, nil)
	t.Cleanup(perOrder.Close)
	s, err := lease.NewStock(lease.Config{Leaser: lease.InvokeLeaser{Invoker: rec, AppID: stocktest.AppID}, Units: units, Next: perOrder, Now: now})
	require.NoError(t, err)
	t.Cleanup(s.Close) // before perOrder's
	return s, rec
}

func newOrderID() string { return "order-" + rand.Text() }

func take(t *testing.T, s stock.Stock, qty int) stock.Availability {
	t.Helper()
	a, err := s.Take(context.Background(), newOrderID(), "product-1", qty)
	require.NoError(t, err)
	require.True(t, a.Available)
	return a
}

func confirm(s stock.Stock, a stock.Availability) {
	s.Confirm(stock.Taken{OrderID: a.OrderID, ProductID: "product-1"})
}

func TestLeaseStockPlacesOrdersWithoutCallingTheInventory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc, inv := stocktest.Inventory(t, stocktest.Leasing, 10_000, nil)
		s, rec := leased(t, sc, 100, nil)
		ids := map[string]bool{}
		for range 24 { // 48 units: under half the lease, so no next lease is asked for
			a := take(t, s, 2)
			assert.Equal(t, "Laptop", a.ProductName)
			assert.Regexp(t, `^order-[0-9a-f]{32}$`, a.OrderID, "the order is stored under its slot's id")
			ids[a.OrderID] = true
			confirm(s, a)
		}
		assert.Len(t, ids, 24)
		assert.Equal(t, []string{"lease:grant"}, rec.Calls(), "one call for 24 orders")
		assert.Equal(t, 9_900, stocktest.Left(t, inv), "the lease's 100 units are taken")
		s.Close()
		assert.Equal(t, 9_952, stocktest.Left(t, inv), "settled on close: the 52 units of unused slots come back")
		assert.Equal(t, []string{"lease:grant", "lease:settle:1"}, rec.Calls())
	})
}

func TestLeaseStockSettlesALeaseOnceItIsOldWithTheOrdersItStored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc, inv := stocktest.Inventory(t, stocktest.Leasing, 10_000, nil)
		s, rec := leased(t, sc, 100, nil)
		a := take(t, s, 3)
		unstored := take(t, s, 4)
		confirm(s, a)
		time.Sleep(lease.Life)
		synctest.Wait()
		assert.Equal(t, 9_900, stocktest.Left(t, inv), "an order in flight keeps its lease from being settled")
		confirm(s, unstored)
		time.Sleep(lease.TickEvery)
		synctest.Wait()
		assert.Equal(t, 9_993, stocktest.Left(t, inv), "the lease is settled with its two orders' 7 units, on the next tick")
		assert.Equal(t, []string{"lease:grant", "lease:settle:1"}, rec.Calls())

		take(t, s, 1)
		assert.Equal(t, 9_893, stocktest.Left(t, inv), "the next order asks for a new lease")
	})
}

func TestLeaseStockForgetsALeaseWhoseOrderNeverConfirmed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc, inv := stocktest.Inventory(t, stocktest.Leasing, 10_000, nil)
		s, rec := leased(t, sc, 100, nil)
		take(t, s, 3) // its commit failed, or its outcome is unknown
		time.Sleep(lease.Life + lease.AbandonAfter)
		s.Close()
		assert.Equal(t, 9_900, stocktest.Left(t, inv), "the lease is left to the inventory's hold sweep, which looks its orders up")
		assert.Equal(t, []string{"lease:grant"}, rec.Calls())
	})
}

func TestLeaseStockSettlesAUsedUpLeaseWithTheNextRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc, inv := stocktest.Inventory(t, stocktest.Leasing, 1_000, nil)
		s, rec := leased(t, sc, 10, nil)
		for i := range 5 {
			confirm(s, take(t, s, 2))
			if i == 0 {
				time.Sleep(lease.Life / 2) // too slow a product to ask for the next lease ahead
			}
		}
		take(t, s, 1)
		assert.Equal(t, []string{"lease:grant", "lease:grant+settle:1"}, rec.Calls(), "the second request carries the first lease's settlement")
		assert.Equal(t, 980, stocktest.Left(t, inv), "10 units sold, 10 leased anew")
	})
}

func TestLeaseStockAsksForTheNextLeaseAheadForAProductThatSellsFast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc, inv := stocktest.Inventory(t, stocktest.Leasing, 1_000, nil)
		s, rec := leased(t, sc, 10, nil)
		var placed []stock.Availability
		for range 5 { // half the lease at once: it runs out long before its life
			placed = append(placed, take(t, s, 1))
		}
		synctest.Wait()
		assert.Equal(t, 980, stocktest.Left(t, inv), "the next lease was asked for, and granted, ahead")
		for range 6 {
			placed = append(placed, take(t, s, 1))
		}
		assert.Equal(t, []string{"lease:grant", "lease:grant"}, rec.Calls(), "the order after the first lease ran out waited for no call")
		var ids []string
		for _, a := range placed {
			ids = append(ids, a.OrderID)
			confirm(s, a)
		}
		assert.Len(t, slices.Compact(slices.Sorted(slices.Values(ids))), 11, "every order has a slot id of its own")
		s.Close()
		assert.Equal(t, 989, stocktest.Left(t, inv), "11 units sold; the second lease's 9 unused units came back")
		assert.Equal(t, []string{"lease:grant", "lease:grant", "lease:settle:2"}, rec.Calls())
	})
}

func TestLeaseStockGivesBackALeaseAskedForAheadThatNoOrderUsed(t *testing.T) {
	// Half of a 10-unit lease sold and stored at once, the next lease asked
	// for ahead; then the product goes quiet and both leases expire.
	setup := func(t *testing.T, now func() time.Time) (*lease.Stock, *stocktest.Recorder, func() int) {
		sc, inv := stocktest.Inventory(t, stocktest.Leasing, 1_000, nil)
		s, rec := leased(t, sc, 10, now)
		for range 5 {
			confirm(s, take(t, s, 1))
		}
		synctest.Wait()
		require.Equal(t, []string{"lease:grant", "lease:grant"}, rec.Calls(), "asked for ahead")
		return s, rec, func() int { return stocktest.Left(t, inv) }
	}
	synctest.Test(t, func(t *testing.T) {
		_, rec, left := setup(t, nil)
		time.Sleep(lease.Life)
		synctest.Wait()
		assert.Equal(t, 995, left(), "settled by the tick: 5 units sold; the first lease's other 5 and all 10 of the second came back")
		assert.Equal(t, []string{"lease:grant", "lease:grant", "lease:settle:2"}, rec.Calls())
	})
	synctest.Test(t, func(t *testing.T) {
		clock := &fakeClock{t: time.Now()}
		s, rec, left := setup(t, clock.now)
		clock.add(lease.Life) // no tick: the bubble's clock stands still
		confirm(s, take(t, s, 1))
		assert.Equal(t, []string{"lease:grant", "lease:grant", "lease:grant+settle:2"}, rec.Calls(), "a fresh lease, carrying both expired ones' settlements")
		assert.Equal(t, 985, left(), "5 units sold from the first lease, the rest of it and all of the second back, a third lease of 10 taken")
	})
}

func TestLeaseStockTakesOrderByOrderWhenTheInventoryWillNotLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { // short stock
		sc, inv := stocktest.Inventory(t, stocktest.Leasing, 1_000, nil) // a lease of 100 needs 1 600
		s, rec := leased(t, sc, 100, nil)
		a := take(t, s, 1)
		assert.Empty(t, a.OrderID, "the order keeps its own id")
		take(t, s, 1)
		assert.Equal(t, []string{"lease:grant", "reserve:1", "reserve:1"}, rec.Calls(), "no lease asked again within RetryAfter")
		time.Sleep(lease.RetryAfter)
		take(t, s, 1)
		assert.Equal(t, "lease:grant", rec.Calls()[3])
		assert.Equal(t, 997, stocktest.Left(t, inv))
	})
	synctest.Test(t, func(t *testing.T) { // more units than a lease
		sc, inv := stocktest.Inventory(t, stocktest.Leasing, 10_000, nil)
		s, rec := leased(t, sc, 100, nil)
		take(t, s, 101)
		assert.Equal(t, []string{"reserve:1"}, rec.Calls())
		assert.Equal(t, 9_899, stocktest.Left(t, inv))
	})
	synctest.Test(t, func(t *testing.T) { // the seed's inventory
		sc, _ := stocktest.Inventory(t, stocktest.Seed, 10_000, nil)
		s, rec := leased(t, sc, 10, nil)
		take(t, s, 1)
		time.Sleep(lease.RetryAfter)
		take(t, s, 1)
		assert.Equal(t, []string{"lease:grant", "reserve:1", "check:1", "check:1"}, rec.Calls(), "asked once, then order by order")
	})
	synctest.Test(t, func(t *testing.T) { // an unknown product
		sc, _ := stocktest.Inventory(t, stocktest.Leasing, 10_000, nil)
		s, _ := leased(t, sc, 100, nil)
		_, err := s.Take(context.Background(), newOrderID(), "product-9", 1)
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
	synctest.Test(t, func(t *testing.T) {
		sc, inv := stocktest.Inventory(t, stocktest.Leasing, 10_000, nil)
		lost := &lostAnswer{next: sc}
		lost.n.Store(1)
		clock := &fakeClock{t: time.Now()}
		s, rec := leased(t, lost, 100, clock.now)
		a := take(t, s, 1)
		assert.Empty(t, a.OrderID, "served order by order meanwhile")
		assert.Equal(t, 9_899, stocktest.Left(t, inv), "the grant was taken all the same")
		clock.add(lease.RetryAfter)
		b := take(t, s, 1)
		assert.NotEmpty(t, b.OrderID)
		assert.Equal(t, 9_899, stocktest.Left(t, inv), "the next request gave the lost grant's 100 back whole and took a new one's")
		confirm(s, b)
		s.Close()
		assert.Equal(t, 9_998, stocktest.Left(t, inv))
		assert.Equal(t, []string{"lease:grant", "reserve:1", "lease:grant+settle:1", "lease:settle:1"}, rec.Calls())
	})
}

func TestLeaseStockUnderConcurrentOrdersSellsExactlyWhatWasStored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		stored := map[string]orderevent.Stored{}
		lookups := 0
		orders := orderevent.BulkLookupFunc(func(_ context.Context, ids []string) ([]orderevent.Stored, error) {
			mu.Lock()
			defer mu.Unlock()
			lookups++
			out := make([]orderevent.Stored, len(ids))
			for i, id := range ids {
				out[i] = stored[id]
			}
			return out, nil
		})
		sc, inv := stocktest.Inventory(t, stocktest.Leasing, 100_000, orders)
		s, _ := leased(t, sc, 25, nil)
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
					stored[a.OrderID] = orderevent.Stored{Found: true, ProductID: "product-1", Quantity: q}
					sold += q
					mu.Unlock()
					confirm(s, a)
				}
			})
		}
		wg.Wait()
		s.Close()
		assert.Less(t, stocktest.Left(t, inv), 100_000-sold, "leases whose orders failed wait for the hold sweep")
		time.Sleep(time.Millisecond) // older than the inventory's HOLD_TTL
		require.NoError(t, inv.SweepHolds(context.Background(), runtime.BindingEvent[struct{}]{}))
		assert.Equal(t, 100_000-sold, stocktest.Left(t, inv), "the sweep settles them by looking their slots up: exactly what was stored is sold")
		assert.Positive(t, lookups)
	})
}

func TestLeaseStockClosedWhileALeaseIsAskedForGivesTheGrantBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc, inv := stocktest.Inventory(t, stocktest.Leasing, 10_000, nil)
		s, rec := leased(t, sc, 100, nil)
		rec.Hold()
		took := make(chan stock.Availability, 1)
		go func() { took <- take(t, s, 1) }()
		synctest.Wait()
		closed := make(chan struct{})
		go func() { s.Close(); close(closed) }()
		synctest.Wait()
		select {
		case <-closed:
			t.Fatal("Close returned with a lease request in flight")
		default:
		}
		rec.Release()
		<-closed
		a := <-took
		assert.Empty(t, a.OrderID, "after Close the order is taken order by order")
		assert.Equal(t, 9_999, stocktest.Left(t, inv), "the grant that arrived after Close went back whole")
		assert.ElementsMatch(t, []string{"lease:grant", "reserve:1", "lease:settle:1"}, rec.Calls())
	})
}

func TestLeaseStockCloseWaitsForTheNextLeaseAskedForAhead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc, inv := stocktest.Inventory(t, stocktest.Leasing, 1_000, nil)
		s, rec := leased(t, sc, 10, nil)
		for range 4 {
			confirm(s, take(t, s, 1))
		}
		rec.Hold()
		confirm(s, take(t, s, 1)) // half the lease: the next is asked for ahead, and held
		synctest.Wait()
		closed := make(chan struct{})
		go func() { s.Close(); close(closed) }()
		synctest.Wait()
		select {
		case <-closed:
			t.Fatal("Close returned with the request for the next lease in flight")
		default:
		}
		rec.Release()
		<-closed
		assert.Equal(t, []string{"lease:grant", "lease:grant", "lease:settle:2"}, rec.Calls())
		assert.Equal(t, 995, stocktest.Left(t, inv), "5 units sold; the rest of the first lease and all of the second came back")
	})
}
