package inventory

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings/memory"
)

// slowStore makes writes take a while, as a sidecar round trip does, and
// counts them.
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
			r, err := svcs[i%len(svcs)].Check(context.Background(), CheckRequest{ProductID: "product-1", Quantity: 1})
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
	store := &slowStore{Store: memory.NewStore()}
	svc, err := New(store, Config{Catalog: []Item{{ID: "product-1", Name: "Laptop", Stock: 1000}}})
	require.NoError(t, err)
	assert.Equal(t, 64, checkConcurrently(t, []*Service{svc}, 64))
	inv, err := svc.List(context.Background(), struct{}{})
	require.NoError(t, err)
	assert.Equal(t, 1000-64, inv["product-1"].Stock)
	assert.Less(t, store.saves.Load(), int64(32), "64 concurrent checks must share writes, got %d", store.saves.Load())
}

func TestReplicasNeverOversell(t *testing.T) {
	store := &slowStore{Store: memory.NewStore()}
	cfg := Config{Catalog: []Item{{ID: "product-1", Name: "Laptop", Stock: 50}}}
	a, err := New(store, cfg)
	require.NoError(t, err)
	b, err := New(store, cfg)
	require.NoError(t, err)
	assert.Equal(t, 50, checkConcurrently(t, []*Service{a, b}, 120), "exactly the stock is confirmed across two replicas")
	inv, err := a.List(context.Background(), struct{}{})
	require.NoError(t, err)
	assert.Equal(t, 0, inv["product-1"].Stock)
}

func TestReleaseOncePerOrder(t *testing.T) {
	svc, err := New(memory.NewStore(), Config{})
	require.NoError(t, err)
	_, err = svc.Check(context.Background(), CheckRequest{ProductID: "product-1", Quantity: 4})
	require.NoError(t, err)
	r, err := svc.Release(context.Background(), ReleaseRequest{OrderID: "order-1", ProductID: "product-1", Quantity: 4})
	require.NoError(t, err)
	assert.True(t, r.Released)
	assert.Equal(t, 10, r.RemainingStock)
	again, err := svc.Release(context.Background(), ReleaseRequest{OrderID: "order-1", ProductID: "product-1", Quantity: 4})
	require.NoError(t, err)
	assert.False(t, again.Released, "a retried release gives nothing back twice")
	inv, _ := svc.List(context.Background(), struct{}{})
	assert.Equal(t, 10, inv["product-1"].Stock)
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
