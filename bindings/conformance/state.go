package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings"
)

// StateStore runs the state store suite against s. Keys are unique per run,
// so a shared store is fine.
func StateStore(t *testing.T, s bindings.StateStore) {
	prefix := fmt.Sprintf("conf-%d-", rand.Int64())
	key := func(name string) string { return prefix + name }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)

	t.Run("missing key is not found", func(t *testing.T) {
		it, err := s.Get(ctx, key("missing"))
		require.NoError(t, err)
		assert.False(t, it.Found)
		assert.Empty(t, it.Value)
	})

	t.Run("create then read back with an etag", func(t *testing.T) {
		require.NoError(t, s.Save(ctx, key("a"), []byte(`{"n":1}`), ""))
		it, err := s.Get(ctx, key("a"))
		require.NoError(t, err)
		assert.True(t, it.Found)
		assert.JSONEq(t, `{"n":1}`, string(it.Value))
		assert.NotEmpty(t, it.ETag)
	})

	t.Run("create of an existing key conflicts and keeps the value", func(t *testing.T) {
		require.NoError(t, s.Save(ctx, key("b"), []byte(`{"n":1}`), ""))
		err := s.Save(ctx, key("b"), []byte(`{"n":2}`), "")
		require.ErrorIs(t, err, bindings.ErrConflict)
		it, err := s.Get(ctx, key("b"))
		require.NoError(t, err)
		assert.JSONEq(t, `{"n":1}`, string(it.Value))
	})

	t.Run("compare-and-swap succeeds once per etag", func(t *testing.T) {
		require.NoError(t, s.Save(ctx, key("c"), []byte(`{"n":1}`), ""))
		it, err := s.Get(ctx, key("c"))
		require.NoError(t, err)
		require.NoError(t, s.Save(ctx, key("c"), []byte(`{"n":2}`), it.ETag))
		err = s.Save(ctx, key("c"), []byte(`{"n":3}`), it.ETag)
		require.ErrorIs(t, err, bindings.ErrConflict, "a stale etag must lose")
		now, err := s.Get(ctx, key("c"))
		require.NoError(t, err)
		assert.JSONEq(t, `{"n":2}`, string(now.Value))
		assert.NotEqual(t, it.ETag, now.ETag)
	})

	t.Run("concurrent increments with compare-and-swap lose nothing", func(t *testing.T) {
		k := key("counter")
		require.NoError(t, s.Save(ctx, k, []byte(`{"n":0}`), ""))
		const workers, each = 8, 5
		var wg sync.WaitGroup
		var conflicts atomic.Int64
		for range workers {
			wg.Go(func() {
				for done := 0; done < each; {
					it, err := s.Get(ctx, k)
					if !assert.NoError(t, err) {
						return
					}
					var v struct{ N int }
					_ = json.Unmarshal(it.Value, &v)
					next, _ := json.Marshal(struct{ N int }{v.N + 1})
					switch err := s.Save(ctx, k, next, it.ETag); {
					case err == nil:
						done++
					case assert.ErrorIs(t, err, bindings.ErrConflict):
						conflicts.Add(1)
					default:
						return
					}
				}
			})
		}
		wg.Wait()
		it, err := s.Get(ctx, k)
		require.NoError(t, err)
		var v struct{ N int }
		require.NoError(t, json.Unmarshal(it.Value, &v))
		assert.Equal(t, workers*each, v.N)
	})

	t.Run("bulk get keeps key order and reports missing keys", func(t *testing.T) {
		require.NoError(t, s.Save(ctx, key("d1"), []byte(`{"d":1}`), ""))
		require.NoError(t, s.Save(ctx, key("d3"), []byte(`{"d":3}`), ""))
		items, err := s.BulkGet(ctx, []string{key("d3"), key("d2"), key("d1")})
		require.NoError(t, err)
		require.Len(t, items, 3)
		assert.Equal(t, key("d3"), items[0].Key)
		assert.JSONEq(t, `{"d":3}`, string(items[0].Value))
		assert.False(t, items[1].Found)
		assert.JSONEq(t, `{"d":1}`, string(items[2].Value))
	})

	t.Run("delete with a stale etag conflicts, unconditional delete removes", func(t *testing.T) {
		require.NoError(t, s.Save(ctx, key("e"), []byte(`{"e":1}`), ""))
		it, err := s.Get(ctx, key("e"))
		require.NoError(t, err)
		require.NoError(t, s.Save(ctx, key("e"), []byte(`{"e":2}`), it.ETag))
		require.ErrorIs(t, s.Delete(ctx, key("e"), it.ETag), bindings.ErrConflict)
		require.NoError(t, s.Delete(ctx, key("e"), ""))
		gone, err := s.Get(ctx, key("e"))
		require.NoError(t, err)
		assert.False(t, gone.Found)
	})

	t.Run("transaction applies every op", func(t *testing.T) {
		require.NoError(t, s.Save(ctx, key("t-old"), []byte(`{"old":true}`), ""))
		err := s.Transact(ctx, []bindings.StateOp{
			{Key: key("t1"), Value: []byte(`{"t":1}`)},
			{Key: key("t2"), Value: []byte(`{"t":2}`)},
			{Key: key("t-old"), Delete: true},
		})
		require.NoError(t, err)
		items, err := s.BulkGet(ctx, []string{key("t1"), key("t2"), key("t-old")})
		require.NoError(t, err)
		assert.JSONEq(t, `{"t":1}`, string(items[0].Value))
		assert.JSONEq(t, `{"t":2}`, string(items[1].Value))
		assert.False(t, items[2].Found)
	})

	t.Run("an item written with a TTL is forgotten after it", func(t *testing.T) {
		require.NoError(t, s.Transact(ctx, []bindings.StateOp{
			{Key: key("ttl"), Value: []byte(`{"brief":true}`), TTL: time.Second},
			{Key: key("kept"), Value: []byte(`{"brief":false}`)},
		}))
		it, err := s.Get(ctx, key("ttl"))
		require.NoError(t, err)
		require.True(t, it.Found, "there until its TTL")
		require.Eventually(t, func() bool {
			it, err := s.Get(ctx, key("ttl"))
			return err == nil && !it.Found
		}, 10*time.Second, 100*time.Millisecond, "forgotten after its TTL")
		kept, err := s.Get(ctx, key("kept"))
		require.NoError(t, err)
		assert.True(t, kept.Found, "an item without TTL stays")
	})
}
