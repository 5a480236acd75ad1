package state_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/bindings/memory"
	"github.com/daprfn/shop/runtime/state"
)

type stock struct {
	Units int `json:"units"`
}

func TestUpdateCreatesChangesAndSkips(t *testing.T) {
	ctx, s := context.Background(), memory.NewStore()
	v, err := state.Update(ctx, s, "k", func(st *stock, found bool) error {
		assert.False(t, found)
		st.Units = 3
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, 3, v.Units)
	it, _ := s.Get(ctx, "k")
	before := it.ETag

	v, err = state.Update(ctx, s, "k", func(st *stock, found bool) error {
		assert.True(t, found)
		assert.Equal(t, 3, st.Units)
		return state.ErrUnchanged
	})
	require.NoError(t, err)
	assert.Equal(t, 3, v.Units, "unchanged returns the value as read")
	it, _ = s.Get(ctx, "k")
	assert.Equal(t, before, it.ETag, "and writes nothing")

	refused := errors.New("not enough")
	_, err = state.Update(ctx, s, "k", func(st *stock, _ bool) error { st.Units = -1; return refused })
	require.ErrorIs(t, err, refused)
	it, _ = s.Get(ctx, "k")
	assert.JSONEq(t, `{"units":3}`, string(it.Value), "a change that fails writes nothing")
}

func TestUpdateOfACorruptValueFails(t *testing.T) {
	ctx, s := context.Background(), memory.NewStore()
	require.NoError(t, s.Save(ctx, "k", []byte(`not json`), ""))
	_, err := state.Update(ctx, s, "k", func(*stock, bool) error { t.Fatal("change ran on a corrupt value"); return nil })
	require.ErrorContains(t, err, "corrupt")
}

// racer writes the key behind every Get's back, so every write conflicts.
type racer struct {
	*memory.Store
	gets int
}

func (r *racer) Get(ctx context.Context, key string) (bindings.StateItem, error) {
	it, err := r.Store.Get(ctx, key)
	r.gets++
	_ = r.Store.Transact(ctx, []bindings.StateOp{{Key: key, Value: []byte(`{"units":0}`), ETag: it.ETag}})
	return it, err
}

func TestUpdateBacksOffAndGivesUpAfterItsAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &racer{Store: memory.NewStore()}
		start := time.Now()
		_, err := state.Update(t.Context(), s, "k", func(st *stock, _ bool) error { st.Units++; return nil },
			state.WithBackoff(state.Backoff{Base: 10 * time.Millisecond, Max: 40 * time.Millisecond, Attempts: 5}))
		require.ErrorIs(t, err, state.ErrContended)
		assert.Equal(t, 5, s.gets)
		waited := time.Since(start)
		// Waits of 10, 20, 40, 40 ms, each jittered to between half and one
		// and a half of it.
		assert.GreaterOrEqual(t, waited, 55*time.Millisecond)
		assert.LessOrEqual(t, waited, 165*time.Millisecond)
	})
}

func TestUpdateStopsWaitingWhenItsContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &racer{Store: memory.NewStore()}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := state.Update(ctx, s, "k", func(st *stock, _ bool) error { st.Units++; return nil },
			state.WithBackoff(state.Backoff{Base: time.Second, Max: time.Minute, Attempts: 100}))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 30*time.Millisecond, time.Since(start), "it gave up when the context ended, not after its backoff")
	})
}
