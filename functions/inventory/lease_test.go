package inventory

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings/memory"
	"github.com/daprfn/shop/functions/lease"
	"github.com/daprfn/shop/functions/orderevent"
	"github.com/daprfn/shop/functions/stock"
	"github.com/daprfn/shop/runtime"
)

var leaseCatalog = []Item{{ID: "product-1", Name: "Laptop", Stock: 1000}, {ID: "product-2", Name: "Mouse", Stock: 50}}

func TestLeaseTakesStockAndSettlingGivesBackTheUnusedPart(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, memory.NewStore(), Config{Catalog: leaseCatalog})
	g := lease.NewGrant(60)
	a, err := svc.Lease(ctx, lease.Request{ProductID: "product-1", Grant: &g})
	require.NoError(t, err)
	assert.Equal(t, lease.Answer{Granted: true, ProductName: "Laptop", RemainingStock: 940}, a)
	assert.Equal(t, 940, stockOf(t, svc, "product-1"))

	again, err := svc.Lease(ctx, lease.Request{ProductID: "product-1", Grant: &g})
	require.NoError(t, err)
	assert.True(t, again.Granted, "a grant asked again answers as the first")
	assert.Equal(t, 940, stockOf(t, svc, "product-1"), "and takes nothing twice")

	g2 := lease.NewGrant(10)
	a, err = svc.Lease(ctx, lease.Request{ProductID: "product-1", Grant: &g2, Settle: []lease.Settlement{{ID: g.ID, Used: 25}}})
	require.NoError(t, err)
	assert.Equal(t, lease.Answer{Granted: true, ProductName: "Laptop", RemainingStock: 965, Settled: 1}, a,
		"the 35 unused units come back and the new lease's 10 go, in one write")

	a, err = svc.Lease(ctx, lease.Request{ProductID: "product-1", Settle: []lease.Settlement{{ID: g.ID, Used: 0}, {ID: g2.ID, Used: 99}}})
	require.NoError(t, err)
	assert.Equal(t, 1, a.Settled, "a settled lease is settled once")
	assert.False(t, a.Granted)
	assert.Equal(t, 965, stockOf(t, svc, "product-1"), "used is capped at the lease's units")
}

func TestLeaseIsGrantedOnlyFromPlentifulStock(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, memory.NewStore(), Config{Catalog: leaseCatalog})
	g := lease.NewGrant(4) // 16 x 4 = 64 > 50
	a, err := svc.Lease(ctx, lease.Request{ProductID: "product-2", Grant: &g})
	require.NoError(t, err)
	assert.Equal(t, lease.Answer{ProductName: "Mouse", RemainingStock: 50}, a)
	g = lease.NewGrant(3) // 48 <= 50
	a, err = svc.Lease(ctx, lease.Request{ProductID: "product-2", Grant: &g})
	require.NoError(t, err)
	assert.True(t, a.Granted)
	assert.Equal(t, 47, a.RemainingStock)

	a, err = svc.Lease(ctx, lease.Request{ProductID: "product-9", Grant: &g})
	require.NoError(t, err)
	assert.Equal(t, lease.Answer{NotFound: true}, a)
}

// orderBook is an orderevent.Lookup of stored orders; ids in down fail.
type orderBook struct {
	orders map[string]orderevent.Stored
	down   map[string]bool
}

func (b orderBook) LookupOrder(_ context.Context, id string) (orderevent.Stored, error) {
	if b.down[id] {
		return orderevent.Stored{}, errors.New("order-service unreachable")
	}
	return b.orders[id], nil
}

// bulkBook is an orderBook that also looks many orders up in one call, and
// records the ids of each such call.
type bulkBook struct {
	orderBook
	calls [][]string
}

func (b *bulkBook) LookupOrders(ctx context.Context, ids []string) ([]orderevent.Stored, error) {
	b.calls = append(b.calls, ids)
	out := make([]orderevent.Stored, len(ids))
	for i, id := range ids {
		o, err := b.LookupOrder(ctx, id)
		if err != nil {
			return nil, err
		}
		out[i] = o
	}
	return out, nil
}

func TestSweepSettlesALeaseNobodySettledByLookingUpItsSlots(t *testing.T) {
	t.Run("one order at a time", func(t *testing.T) {
		book := orderBook{orders: map[string]orderevent.Stored{}, down: map[string]bool{}}
		sweepDeadLease(t, book, book)
	})
	t.Run("all its orders in one call", func(t *testing.T) {
		book := &bulkBook{orderBook: orderBook{orders: map[string]orderevent.Stored{}, down: map[string]bool{}}}
		sweepDeadLease(t, book, book.orderBook)
		require.Len(t, book.calls, 2, "one call per sweep of the lease, the failed one included")
		for _, ids := range book.calls {
			assert.Len(t, ids, 10, "every slot of the 10-unit lease")
		}
	})
}

// sweepDeadLease settles a lease whose order-service died through orders,
// which finds the orders of book.
func sweepDeadLease(t *testing.T, orders orderevent.Lookup, book orderBook) {
	ctx := context.Background()
	svc := newService(t, memory.NewStore(), Config{Catalog: leaseCatalog, Orders: orders, HoldTTL: time.Minute})
	now := time.Now()
	svc.now = func() time.Time { return now }
	dead, young := lease.NewGrant(10), lease.NewGrant(20)
	for _, g := range []*lease.Grant{&dead, &young} {
		a, err := svc.Lease(ctx, lease.Request{ProductID: "product-1", Grant: g})
		require.NoError(t, err)
		require.True(t, a.Granted)
		svc.now = func() time.Time { return now.Add(30 * time.Second) }
	}
	assert.Equal(t, 970, stockOf(t, svc, "product-1"))
	// The dead order-service stored orders in slots 0 (2 units) and 3 (1
	// unit); slot 1's order failed; slot 5 holds an order of another product
	// (no lease of this product gives its id to one).
	book.orders[lease.OrderID(dead, 0)] = orderevent.Stored{Found: true, ProductID: "product-1", Quantity: 2}
	book.orders[lease.OrderID(dead, 3)] = orderevent.Stored{Found: true, ProductID: "product-1", Quantity: 1}
	book.orders[lease.OrderID(dead, 5)] = orderevent.Stored{Found: true, ProductID: "product-2", Quantity: 4}
	book.down[lease.OrderID(dead, 7)] = true

	svc.now = func() time.Time { return now.Add(61 * time.Second) }
	require.Error(t, svc.SweepHolds(ctx, runtime.BindingEvent[struct{}]{}), "a slot that cannot be looked up")
	assert.Equal(t, 970, stockOf(t, svc, "product-1"), "the lease waits for the next run")

	delete(book.down, lease.OrderID(dead, 7))
	require.NoError(t, svc.SweepHolds(ctx, runtime.BindingEvent[struct{}]{}))
	assert.Equal(t, 977, stockOf(t, svc, "product-1"), "the 7 units no stored order took come back")
	require.NoError(t, svc.SweepHolds(ctx, runtime.BindingEvent[struct{}]{}))
	assert.Equal(t, 977, stockOf(t, svc, "product-1"), "a settled lease is settled once; the young one is left alone")

	a, err := svc.Lease(ctx, lease.Request{ProductID: "product-1", Settle: []lease.Settlement{{ID: dead.ID, Used: 0}, {ID: young.ID, Used: 20}}})
	require.NoError(t, err)
	assert.Equal(t, 1, a.Settled, "the late settlement of the swept lease changes nothing")
	assert.Equal(t, 977, a.RemainingStock)
}

func TestRestockCountsLeasedUnits(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, memory.NewStore(), Config{Catalog: leaseCatalog})
	_, err := svc.Check(ctx, stock.CheckRequest{ProductID: "product-1", Quantity: 100})
	require.NoError(t, err)
	g := lease.NewGrant(50)
	_, err = svc.Lease(ctx, lease.Request{ProductID: "product-1", Grant: &g})
	require.NoError(t, err)
	assert.Equal(t, 850, stockOf(t, svc, "product-1"))
	require.NoError(t, svc.Restock(ctx, runtime.BindingEvent[struct{}]{}))
	assert.Equal(t, 950, stockOf(t, svc, "product-1"), "topped up to 1000 counting the 50 leased")
	_, err = svc.Lease(ctx, lease.Request{ProductID: "product-1", Settle: []lease.Settlement{{ID: g.ID, Used: 10}}})
	require.NoError(t, err)
	assert.Equal(t, 990, stockOf(t, svc, "product-1"), "never above the level once settled")
}
