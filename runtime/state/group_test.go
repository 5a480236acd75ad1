package state_test

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings/memory"
	"github.com/daprfn/shop/runtime/state"
)

// slowStore takes a millisecond per write, as a sidecar round trip does,
// counts the writes, and holds them while gate is set. The tests run in
// synctest bubbles, where the millisecond passes on the bubble's clock.
type slowStore struct {
	*memory.Store
	saves atomic.Int64
	gate  chan struct{}
}

func (s *slowStore) Save(ctx context.Context, key string, value []byte, etag string) error {
	s.saves.Add(1)
	if s.gate != nil {
		<-s.gate
	}
	time.Sleep(time.Millisecond)
	return s.Store.Save(ctx, key, value, etag)
}

type counter struct{ N int }

func read(t *testing.T, s *slowStore, key string) counter {
	t.Helper()
	it, err := s.Get(context.Background(), key)
	require.NoError(t, err)
	var c counter
	require.NoError(t, json.Unmarshal(it.Value, &c))
	return c
}

func add(n int) func(*counter) bool { return func(c *counter) bool { c.N += n; return true } }

func TestGroupWritesTheChangesThatCameDuringAWriteTogether(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &slowStore{Store: memory.NewStore()}
		g := state.NewGroup(store, func(key string) counter { return counter{N: 100} })
		defer g.Close()
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() { assert.NoError(t, g.Update(t.Context(), "hits", add(1))) })
		}
		wg.Wait()
		assert.Equal(t, 150, read(t, store, "hits").N, "every change applied once, on the initial value")
		assert.LessOrEqual(t, store.saves.Load(), int64(2), "the first write, and one for all that came during it")
	})
}

func TestGroupLeavesOutAChangeWhoseCallerGaveUpBeforeItsAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &slowStore{Store: memory.NewStore(), gate: make(chan struct{})}
		g := state.NewGroup[counter](store, nil)
		defer g.Close()
		first := make(chan error, 1)
		go func() { first <- g.Update(t.Context(), "hits", add(1)) }()
		synctest.Wait() // the first write waits at the store
		ctx, cancel := context.WithCancel(t.Context())
		gaveUp, kept := make(chan error, 1), make(chan error, 1)
		go func() { gaveUp <- g.Update(ctx, "hits", add(10)) }()
		go func() { kept <- g.Update(t.Context(), "hits", add(100)) }()
		synctest.Wait()
		cancel()
		require.ErrorIs(t, <-gaveUp, context.Canceled)
		close(store.gate)
		require.NoError(t, <-first)
		require.NoError(t, <-kept)
		assert.Equal(t, 101, read(t, store, "hits").N, "the change of the caller who gave up was never applied")
	})
}

func TestGroupWritesNothingWhenNoChangeChangedAnything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &slowStore{Store: memory.NewStore()}
		g := state.NewGroup[counter](store, nil)
		defer g.Close()
		require.NoError(t, g.Update(t.Context(), "hits", func(*counter) bool { return false }))
		assert.Zero(t, store.saves.Load())
	})
}

// Two processes' Groups conflict on the key: each batch is applied again
// to a fresh read, and no change is lost.
func TestGroupsOfTwoProcessesLoseNoChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &slowStore{Store: memory.NewStore()}
		a, b := state.NewGroup[counter](store, nil), state.NewGroup[counter](store, nil)
		defer a.Close()
		defer b.Close()
		var wg sync.WaitGroup
		for i := range 100 {
			g := []*state.Group[counter]{a, b}[i%2]
			wg.Go(func() {
				assert.NoError(t, g.Update(t.Context(), "hits", add(1)))
			})
		}
		wg.Wait()
		assert.Equal(t, 100, read(t, store, "hits").N)
	})
}
