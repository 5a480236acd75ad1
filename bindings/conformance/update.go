package conformance

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/runtime/state"
)

// Update runs the compare-and-swap suite of package state over s: updates
// that race lose nothing, a transaction's other operations happen with the
// value or not at all, and an Index keeps its ids and records together.
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

	t.Run("a transaction creating an existing key conflicts and applies nothing", func(t *testing.T) {
		require.NoError(t, s.Save(ctx, key("made"), []byte(`{"first":true}`), ""))
		err := s.Transact(ctx, []bindings.StateOp{{Key: key("other"), Value: []byte(`{}`)}, {Key: key("made"), Value: []byte(`{"first":false}`)}})
		require.ErrorIs(t, err, bindings.ErrConflict)
		items, err := s.BulkGet(ctx, []string{key("made"), key("other")})
		require.NoError(t, err)
		assert.JSONEq(t, `{"first":true}`, string(items[0].Value))
		assert.False(t, items[1].Found, "nothing of a failed transaction is applied")
	})

	t.Run("the other operations of an update go with its value or not at all", func(t *testing.T) {
		require.NoError(t, s.Save(ctx, key("taken"), []byte(`{}`), ""))
		_, err := state.UpdateWith(ctx, s, key("v"), func(c *counter, _ bool) ([]bindings.StateOp, error) {
			c.N = 1
			return []bindings.StateOp{{Key: key("taken"), Value: []byte(`{"again":true}`)}}, nil // a create that conflicts
		}, state.WithBackoff(state.Backoff{Attempts: 2}))
		require.ErrorIs(t, err, state.ErrContended)
		it, err := s.Get(ctx, key("v"))
		require.NoError(t, err)
		assert.False(t, it.Found, "the value was not written without its operations")

		_, err = state.UpdateWith(ctx, s, key("v"), func(c *counter, _ bool) ([]bindings.StateOp, error) {
			c.N = 2
			return []bindings.StateOp{{Key: key("with-v"), Value: []byte(`{"ok":true}`)}}, nil
		})
		require.NoError(t, err)
		items, err := s.BulkGet(ctx, []string{key("v"), key("with-v")})
		require.NoError(t, err)
		assert.JSONEq(t, `{"N":2}`, string(items[0].Value))
		assert.JSONEq(t, `{"ok":true}`, string(items[1].Value))
	})

	t.Run("an index lists its ids and keeps their records with them", func(t *testing.T) {
		ix := state.Index{Store: s, Key: key("index")}
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Go(func() {
				id := fmt.Sprintf("r%d", i)
				added, err := ix.Add(ctx, id, bindings.StateOp{Key: key(id), Value: []byte(`{}`)})
				assert.NoError(t, err)
				assert.True(t, added)
			})
		}
		wg.Wait()
		ids, err := ix.List(ctx)
		require.NoError(t, err)
		assert.ElementsMatch(t, []string{"r0", "r1", "r2", "r3", "r4", "r5"}, ids, "racing adds lose no id")
		added, err := ix.Add(ctx, "r0", bindings.StateOp{Key: key("r0"), Value: []byte(`{"twice":true}`)})
		require.NoError(t, err)
		assert.False(t, added, "an id listed already adds nothing")
		it, _ := s.Get(ctx, key("r0"))
		assert.JSONEq(t, `{}`, string(it.Value), "and its operations are not applied")

		require.NoError(t, ix.Remove(ctx, []string{"r1", "r2"}, bindings.StateOp{Key: key("r1"), Delete: true}, bindings.StateOp{Key: key("r2"), Delete: true}))
		ids, err = ix.List(ctx)
		require.NoError(t, err)
		assert.ElementsMatch(t, []string{"r0", "r3", "r4", "r5"}, ids)
		items, err := s.BulkGet(ctx, []string{key("r1"), key("r2"), key("r3")})
		require.NoError(t, err)
		assert.False(t, items[0].Found)
		assert.False(t, items[1].Found)
		assert.True(t, items[2].Found)
	})
}
