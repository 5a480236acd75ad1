package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/bindings/memory"
	"github.com/daprfn/shop/functions/orderevent"
	"github.com/daprfn/shop/functions/stock"
	"github.com/daprfn/shop/runtime"
)

// newService returns the inventory over store, closed when the test ends.
func newService(t *testing.T, store bindings.StateStore, cfg Config) *Service {
	t.Helper()
	svc, err := New(store, cfg)
	require.NoError(t, err)
	t.Cleanup(svc.Close)
	return svc
}

// slowStore makes writes take a while, as a sidecar round trip does, and
// counts them. Tests that use it run in a synctest bubble, where the while
// passes on the bubble's clock.
type slowStore struct {
	*memory.Store
	saves atomic.Int64
}

func (s *slowStore) Save(ctx context.Context, key string, value []byte, etag string) error {
	s.saves.Add(1)
	time.Sleep(2 * time.Millisecond)
	return s.Store.Save(ctx, key, value, etag)
}

func checkConcurrently(t *testing.T, svcs []*Service, n int) (available int) {
	t.Helper()
	var wg sync.WaitGroup
	var got atomic.Int64
	for i := range n {
		wg.Go(func() {
			r, err := svcs[i%len(svcs)].Check(context.Background(), stock.CheckRequest{ProductID: "product-1", Quantity: 1})
			if !assert.NoError(t, err) {
				return
			}
			if r.Available {
				got.Add(1)
				assert.GreaterOrEqual(t, r.RemainingStock, 0)
			}
		})
	}
	wg.Wait()
	return int(got.Load())
}

func TestGroupCommitBatchesConcurrentChecks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &slowStore{Store: memory.NewStore()}
		svc := newService(t, store, Config{Catalog: []Item{{ID: "product-1", Name: "Laptop", Stock: 1000}}})
		assert.Equal(t, 64, checkConcurrently(t, []*Service{svc}, 64))
		inv, err := svc.List(context.Background(), struct{}{})
		require.NoError(t, err)
		assert.Equal(t, 1000-64, inv["product-1"].Stock)
		assert.LessOrEqual(t, store.saves.Load(), int64(2), "the checks that came while the first write was in flight share the next")
	})
}

func TestReplicasNeverOversell(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &slowStore{Store: memory.NewStore()}
		cfg := Config{Catalog: []Item{{ID: "product-1", Name: "Laptop", Stock: 50}}}
		a := newService(t, store, cfg)
		b := newService(t, store, cfg)
		assert.Equal(t, 50, checkConcurrently(t, []*Service{a, b}, 120), "exactly the stock is confirmed across two replicas")
		inv, err := a.List(context.Background(), struct{}{})
		require.NoError(t, err)
		assert.Equal(t, 0, inv["product-1"].Stock)
	})
}

func TestReplicasHoldExactlyWhatTheyTake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := &slowStore{Store: memory.NewStore()}
		cfg := Config{Catalog: []Item{{ID: "product-1", Name: "Laptop", Stock: 30}}}
		a := newService(t, store, cfg)
		b := newService(t, store, cfg)
		var wg sync.WaitGroup
		var taken sync.Map
		for i := range 80 {
			wg.Go(func() {
				svc := []*Service{a, b}[i%2]
				id := fmt.Sprintf("order-%d", i)
				for range 2 { // a retried check takes nothing more
					r, err := svc.Check(ctx, stock.CheckRequest{OrderID: id, ProductID: "product-1", Quantity: 1})
					if assert.NoError(t, err) && r.Available {
						taken.Store(id, true)
					}
				}
			})
		}
		wg.Wait()
		var ids []string
		taken.Range(func(k, _ any) bool { ids = append(ids, k.(string)); return true })
		assert.Len(t, ids, 30, "exactly the stock is held across two replicas")
		it, err := store.Get(ctx, Key("product-1"))
		require.NoError(t, err)
		var p Product
		require.NoError(t, json.Unmarshal(it.Value, &p))
		assert.Zero(t, p.Stock)
		assert.ElementsMatch(t, ids, slices.Collect(maps.Keys(p.Holds)), "one hold per order that got stock")
	})
}

func stockOf(t *testing.T, svc *Service, product string) int {
	t.Helper()
	inv, err := svc.List(context.Background(), struct{}{})
	require.NoError(t, err)
	return inv[product].Stock
}

func TestHoldIsTakenOncePerOrderAndConfirmedOnce(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, memory.NewStore(), Config{})
	for range 2 {
		r, err := svc.Check(ctx, stock.CheckRequest{OrderID: "order-1", ProductID: "product-1", Quantity: 4})
		require.NoError(t, err)
		assert.True(t, r.Available)
		assert.Equal(t, 6, r.RemainingStock, "checking again for the same order takes nothing more")
	}
	c, err := svc.Confirm(ctx, stock.ConfirmRequest{Orders: []stock.Confirmation{{OrderID: "order-1", ProductID: "product-1"}, {OrderID: "order-9", ProductID: "product-2"}}})
	require.NoError(t, err)
	assert.Equal(t, 1, c.Confirmed)
	again, err := svc.Confirm(ctx, stock.ConfirmRequest{Orders: []stock.Confirmation{{OrderID: "order-1", ProductID: "product-1"}}})
	require.NoError(t, err)
	assert.Zero(t, again.Confirmed, "a confirmed hold is gone")
	r, err := svc.Check(ctx, stock.CheckRequest{OrderID: "order-1", ProductID: "product-1", Quantity: 4})
	require.NoError(t, err)
	assert.Equal(t, 2, r.RemainingStock, "a check after the confirmation is a new hold")
}

type lookup map[string]bool

func (l lookup) LookupOrder(_ context.Context, id string) (orderevent.Stored, error) {
	ok, known := l[id]
	if !known {
		return orderevent.Stored{}, errors.New("order-service unreachable")
	}
	return orderevent.Stored{Found: ok}, nil
}

func TestSweepSettlesOldHoldsByLookingOrdersUp(t *testing.T) {
	ctx := context.Background()
	store := memory.NewStore()
	orders := lookup{"order-stored": true, "order-lost": false}
	svc := newService(t, store, Config{Orders: orders, HoldTTL: time.Minute})
	now := time.Now()
	svc.now = func() time.Time { return now }
	for id, q := range map[string]int{"order-stored": 1, "order-lost": 2, "order-unknown": 3, "order-young": 4} {
		if id == "order-young" {
			svc.now = func() time.Time { return now.Add(50 * time.Second) }
		}
		_, err := svc.Check(ctx, stock.CheckRequest{OrderID: id, ProductID: "product-1", Quantity: q})
		require.NoError(t, err)
		svc.now = func() time.Time { return now }
	}
	assert.Equal(t, 0, stockOf(t, svc, "product-1"))

	svc.now = func() time.Time { return now.Add(61 * time.Second) }
	err := svc.SweepHolds(ctx, runtime.BindingEvent[struct{}]{})
	require.Error(t, err, "an order that cannot be looked up is retried later")
	assert.Equal(t, 2, stockOf(t, svc, "product-1"), "only the lost order's stock comes back")

	it, err := store.Get(ctx, Key("product-1"))
	require.NoError(t, err)
	var p Product
	require.NoError(t, json.Unmarshal(it.Value, &p))
	assert.ElementsMatch(t, []string{"order-unknown", "order-young"}, slices.Collect(maps.Keys(p.Holds)))

	orders["order-unknown"] = false
	require.NoError(t, svc.SweepHolds(ctx, runtime.BindingEvent[struct{}]{}))
	assert.Equal(t, 5, stockOf(t, svc, "product-1"))
	require.NoError(t, svc.SweepHolds(ctx, runtime.BindingEvent[struct{}]{}))
	assert.Equal(t, 5, stockOf(t, svc, "product-1"), "a settled hold is settled once")
}

func TestInventoryListKeepsTheSeedShape(t *testing.T) {
	svc := newService(t, memory.NewStore(), Config{})
	_, err := svc.Check(context.Background(), stock.CheckRequest{OrderID: "order-1", ProductID: "product-1", Quantity: 1})
	require.NoError(t, err)
	inv, err := svc.List(context.Background(), struct{}{})
	require.NoError(t, err)
	b, _ := json.Marshal(inv["product-1"])
	assert.JSONEq(t, `{"name":"Laptop","stock":9}`, string(b))
}

func TestParseCatalog(t *testing.T) {
	items, err := ParseCatalog("product-1:Laptop:10, product-2:Mouse:50")
	require.NoError(t, err)
	assert.Equal(t, []Item{{"product-1", "Laptop", 10}, {"product-2", "Mouse", 50}}, items)
	for _, bad := range []string{"", "p:x", "p:x:-1", "p:x:ten"} {
		_, err := ParseCatalog(bad)
		assert.Error(t, err, bad)
	}
}

func TestReserveChecksEachOrderWithOneWritePerProduct(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := &slowStore{Store: memory.NewStore()}
		svc := newService(t, store, Config{}) // the seed's catalog: product-1 10, product-2 50
		req := stock.ReserveRequest{Orders: []stock.CheckRequest{
			{OrderID: "order-a", ProductID: "product-1", Quantity: 6},
			{OrderID: "order-b", ProductID: "product-2", Quantity: 5},
			{OrderID: "order-c", ProductID: "product-1", Quantity: 6}, // 4 left: not enough
			{OrderID: "order-d", ProductID: "product-9", Quantity: 1},
			{OrderID: "order-e", ProductID: "product-1", Quantity: 4},
		}}
		require.NoError(t, req.Validate())
		out, err := svc.Reserve(ctx, req)
		require.NoError(t, err)
		require.Len(t, out.Orders, 5)
		for i, r := range out.Orders {
			assert.Equal(t, req.Orders[i].OrderID, r.OrderID, "answers in the request's order")
		}
		assert.True(t, out.Orders[0].Available)
		assert.Equal(t, 4, out.Orders[0].RemainingStock)
		assert.True(t, out.Orders[1].Available)
		assert.False(t, out.Orders[2].Available, "the stock is taken in the request's order")
		assert.True(t, out.Orders[3].NotFound)
		assert.True(t, out.Orders[4].Available)
		assert.Equal(t, 0, out.Orders[4].RemainingStock)
		assert.Equal(t, int64(2), store.saves.Load(), "one write per product")

		again, err := svc.Reserve(ctx, stock.ReserveRequest{Orders: []stock.CheckRequest{{OrderID: "order-a", ProductID: "product-1", Quantity: 6}}})
		require.NoError(t, err)
		assert.True(t, again.Orders[0].Available, "a repeated order answers as its first reservation did")
		assert.Equal(t, int64(2), store.saves.Load(), "and writes nothing")
		c, err := svc.Confirm(ctx, stock.ConfirmRequest{Orders: []stock.Confirmation{{OrderID: "order-a", ProductID: "product-1"}, {OrderID: "order-b", ProductID: "product-2"}, {OrderID: "order-c", ProductID: "product-1"}, {OrderID: "order-e", ProductID: "product-1"}}})
		require.NoError(t, err)
		assert.Equal(t, 3, c.Confirmed, "exactly the available reservations were held")
	})
}

func TestReserveConfirmsInTheSameWriteAsItsTakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := &slowStore{Store: memory.NewStore()}
		svc := newService(t, store, Config{}) // the seed's catalog: product-1 10, product-2 50
		first, err := svc.Reserve(ctx, stock.ReserveRequest{Orders: []stock.CheckRequest{
			{OrderID: "order-a", ProductID: "product-1", Quantity: 2},
			{OrderID: "order-b", ProductID: "product-2", Quantity: 1},
		}})
		require.NoError(t, err)
		assert.Zero(t, first.Confirmed)
		saves := store.saves.Load()

		req := stock.ReserveRequest{
			Orders:  []stock.CheckRequest{{OrderID: "order-c", ProductID: "product-1", Quantity: 3}},
			Confirm: []stock.Confirmation{{OrderID: "order-a", ProductID: "product-1"}, {OrderID: "order-b", ProductID: "product-2"}, {OrderID: "order-x", ProductID: "product-1"}, {OrderID: "order-y", ProductID: "product-9"}},
		}
		require.NoError(t, req.Validate())
		out, err := svc.Reserve(ctx, req)
		require.NoError(t, err)
		assert.Equal(t, 2, out.Confirmed, "order-a's and order-b's holds; order-x held nothing, product-9 is unknown")
		assert.True(t, out.Orders[0].Available)
		assert.Equal(t, 5, out.Orders[0].RemainingStock, "confirming gives nothing back")
		assert.Equal(t, saves+2, store.saves.Load(), "one write per product: product-1's confirmation and take together")
		var p Product
		it, err := store.Get(ctx, Key("product-1"))
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(it.Value, &p))
		assert.Equal(t, []string{"order-c"}, slices.Collect(maps.Keys(p.Holds)), "only the unconfirmed order holds stock")
	})
}

// The seed's /check takes stock with no order id. Taken for good, a caller
// who only ever checks (through the public sidecar, or a swapped-in seed
// order-service) could empty the shop; held as an unclaimed check, the stock
// comes back once the hold is older than the TTL, without asking the order
// function about an order that cannot exist.
func TestACheckWithoutAnOrderTakesStockForTheHoldTTLOnly(t *testing.T) {
	ctx := context.Background()
	store := memory.NewStore()
	svc, err := New(store, Config{Orders: lookup{}, HoldTTL: time.Minute}) // every lookup fails
	require.NoError(t, err)
	now := time.Now()
	svc.now = func() time.Time { return now }
	for range 2 {
		out, err := svc.Check(ctx, stock.CheckRequest{ProductID: "product-1", Quantity: 5})
		require.NoError(t, err)
		assert.True(t, out.Available, "the seed's answer is unchanged")
	}
	assert.Equal(t, 0, stockOf(t, svc, "product-1"), "each check takes its five, as the seed's does")
	held, err := store.Get(ctx, Key("product-1"))
	require.NoError(t, err)
	var rec Product
	require.NoError(t, json.Unmarshal(held.Value, &rec))
	require.Len(t, rec.Holds, 1, "checks of one period share one hold, however many come")
	for id, h := range rec.Holds {
		assert.True(t, strings.HasPrefix(id, stock.UnclaimedCheckPrefix))
		assert.Equal(t, 10, h.Quantity)
	}
	out, err := svc.Check(ctx, stock.CheckRequest{ProductID: "product-1", Quantity: 1})
	require.NoError(t, err)
	assert.False(t, out.Available)

	svc.now = func() time.Time { return now.Add(59 * time.Second) }
	require.NoError(t, svc.SweepHolds(ctx, runtime.BindingEvent[struct{}]{}))
	assert.Equal(t, 0, stockOf(t, svc, "product-1"), "held until the TTL")

	svc.now = func() time.Time { return now.Add(61 * time.Second) }
	require.NoError(t, svc.SweepHolds(ctx, runtime.BindingEvent[struct{}]{}), "no order is looked up for an unclaimed check")
	assert.Equal(t, 10, stockOf(t, svc, "product-1"), "both checks' stock is back")
	it, err := store.Get(ctx, Key("product-1"))
	require.NoError(t, err)
	var p Product
	require.NoError(t, json.Unmarshal(it.Value, &p))
	assert.Empty(t, p.Holds)

	err = stock.CheckRequest{OrderID: stock.UnclaimedCheckPrefix + "x", ProductID: "product-1", Quantity: 1}.Validate()
	require.Error(t, err, "only the inventory names holds so: a caller cannot have one given back unasked")
	assert.Contains(t, err.Error(), "may not start with")
}

// The restock binding's route is reachable by service invocation too; a
// trigger soon after a top-up does not refill stock early.
func TestARestockSoonAfterTheLastTopsNothingUp(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, memory.NewStore(), Config{RestockLevel: 10, RestockEvery: 30 * time.Second})
	now := time.Now()
	svc.now = func() time.Time { return now }
	take := func(n int) {
		_, err := svc.Check(ctx, stock.CheckRequest{OrderID: "order-" + strconv.Itoa(n), ProductID: "product-1", Quantity: 4})
		require.NoError(t, err)
	}
	take(1)
	require.NoError(t, svc.Restock(ctx, runtime.BindingEvent[struct{}]{}))
	assert.Equal(t, 6, stockOf(t, svc, "product-1"), "the catalog's stock counts as the first top-up")
	svc.now = func() time.Time { return now.Add(31 * time.Second) }
	require.NoError(t, svc.Restock(ctx, runtime.BindingEvent[struct{}]{}))
	assert.Equal(t, 10, stockOf(t, svc, "product-1"), "topped up")
	take(2)
	svc.now = func() time.Time { return now.Add(60 * time.Second) }
	require.NoError(t, svc.Restock(ctx, runtime.BindingEvent[struct{}]{}))
	assert.Equal(t, 6, stockOf(t, svc, "product-1"), "too soon after the last top-up")
	svc.now = func() time.Time { return now.Add(62 * time.Second) }
	require.NoError(t, svc.Restock(ctx, runtime.BindingEvent[struct{}]{}))
	assert.Equal(t, 10, stockOf(t, svc, "product-1"), "on schedule again")
}
