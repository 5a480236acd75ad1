package conformance

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/runtime/state"
)

// Update runs the compare-and-swap suite of package state over s: updates
// that race lose nothing, a failed condition is a conflict, and an Index
// keeps every id it was given once.
func Update(t *testing.T, s bindings.StateStore) {
	prefix := fmt.Sprintf("conf-cas-%d-", rand.Int64())
	key := func(name string) string { return prefix + name }
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)

	type counter struct{ N int }

	t.Run("racing updates lose no change", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 5 {
					_, err := state.Update(ctx, s, key("n"), func(c *counter, _ bool) error { c.N++; return nil },
						state.WithBackoff(state.Backoff{Attempts: 200}))
					assert.NoError(t, err)
				}
			})
		}
		wg.Wait()
		got, err := state.Update(ctx, s, key("n"), func(*counter, bool) error { return state.ErrUnchanged })
		require.NoError(t, err)
		assert.Equal(t, 40, got.N)
	})

	t.Run("a transaction with a failed condition fails with a conflict", func(t *testing.T) {
		// Whether its other ops were applied depends on the store (see
		// bindings.StateStore.Transact): Dapr's Redis store applies them.
		require.NoError(t, s.Save(ctx, key("made"), []byte(`{"first":true}`), ""))
		err := s.Transact(ctx, []bindings.StateOp{{Key: key("other"), Value: []byte(`{}`)}, {Key: key("made"), Value: []byte(`{"first":false}`)}})
		require.ErrorIs(t, err, bindings.ErrConflict)
		it, err := s.Get(ctx, key("made"))
		require.NoError(t, err)
		assert.JSONEq(t, `{"first":true}`, string(it.Value), "the conditional op was not applied")
	})

	t.Run("an index lists its ids once however racing adds interleave", func(t *testing.T) {
		ix := state.Index{Store: s, Key: key("index")}
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Go(func() {
				added, err := ix.Add(ctx, fmt.Sprintf("r%d", i))
				assert.NoError(t, err)
				assert.True(t, added)
			})
		}
		wg.Wait()
		ids, err := ix.List(ctx)
		require.NoError(t, err)
		assert.ElementsMatch(t, []string{"r0", "r1", "r2", "r3", "r4", "r5"}, ids, "racing adds lose no id")
		added, err := ix.Add(ctx, "r0")
		require.NoError(t, err)
		assert.False(t, added, "an id listed already adds nothing")

		require.NoError(t, ix.Remove(ctx, "r1", "r2", "r9"))
		ids, err = ix.List(ctx)
		require.NoError(t, err)
		assert.Equal(t, []string{"r0", "r3", "r4", "r5"}, sorted(ids))
	})
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
