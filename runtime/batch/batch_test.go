package batch

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorder is a call function that records its batches, answers each
// request with its value doubled, and holds its calls while gate is set.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
	at      []time.Time // when each batch was called
	gate    chan struct{}
}

func (r *recorder) call(batch []*Call[int, int]) {
	r.mu.Lock()
	in := make([]int, len(batch))
	for i, c := range batch {
		in[i] = c.In
	}
	r.batches = append(r.batches, in)
	r.at = append(r.at, time.Now())
	gate := r.gate
	r.mu.Unlock()
	if gate != nil {
		<-gate
	}
	for _, c := range batch {
		c.Answer(2*c.In, nil)
	}
}

// hold makes calls wait until release.
func (r *recorder) hold() { r.mu.Lock(); r.gate = make(chan struct{}); r.mu.Unlock() }

func (r *recorder) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	close(r.gate)
	r.gate = nil
}

func (r *recorder) got() [][]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.batches)
}

// do runs g.Do(ctx, in) on a goroutine of its own; its outcome arrives on
// the channel returned.
func do(g *Group[int, int], ctx context.Context, in int) <-chan error {
	out := make(chan error, 1)
	go func() {
		got, err := g.Do(ctx, in)
		if err == nil && got != 2*in {
			err = assert.AnError
		}
		out <- err
	}()
	return out
}

func TestRequestsArrivingDuringACallGoTogetherInTheNext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var r recorder
		g := New(Options{}, r.call)
		defer g.Close()
		r.hold()
		first := do(g, t.Context(), 1)
		synctest.Wait()
		require.Equal(t, [][]int{{1}}, r.got(), "an idle group sends at once")
		var rest []<-chan error
		for i := 2; i <= 5; i++ {
			rest = append(rest, do(g, t.Context(), i))
		}
		synctest.Wait()
		assert.Equal(t, 4, g.Queued(), "queued behind the call in flight")
		r.release()
		require.NoError(t, <-first)
		for _, done := range rest {
			require.NoError(t, <-done)
		}
		got := r.got()
		require.Len(t, got, 2, "one call for the four that waited")
		assert.ElementsMatch(t, []int{2, 3, 4, 5}, got[1])
	})
}

func TestABatchCarriesAtMostMax(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var r recorder
		g := New(Options{Max: 2}, r.call)
		defer g.Close()
		r.hold()
		var all []<-chan error
		all = append(all, do(g, t.Context(), 0))
		synctest.Wait()
		for i := 1; i <= 5; i++ {
			all = append(all, do(g, t.Context(), i))
			synctest.Wait() // queued in this order
		}
		r.release()
		for _, done := range all {
			require.NoError(t, <-done)
		}
		assert.Equal(t, [][]int{{0}, {1, 2}, {3, 4}, {5}}, r.got())
	})
}

func TestLingerWaitsForCompany(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var r recorder
		g := New(Options{Linger: 10 * time.Millisecond}, r.call)
		defer g.Close()
		start := time.Now()
		first := do(g, t.Context(), 1)
		time.Sleep(4 * time.Millisecond)
		synctest.Wait()
		assert.Empty(t, r.got(), "the first request waits Linger")
		second := do(g, t.Context(), 2)
		require.NoError(t, <-first)
		require.NoError(t, <-second)
		assert.Equal(t, [][]int{{1, 2}}, r.got(), "the request within Linger went along")
		assert.Equal(t, 10*time.Millisecond, r.at[0].Sub(start), "sent Linger after the first request")
	})
}

func TestLingerEndsAtAFullBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var r recorder
		g := New(Options{Max: 2, Linger: time.Hour}, r.call)
		defer g.Close()
		start := time.Now()
		r.hold()
		g.Add(1)
		g.Add(2) // full before the drain looks
		synctest.Wait()
		assert.Equal(t, [][]int{{1, 2}}, r.got())
		assert.Zero(t, r.at[0].Sub(start), "a full batch does not linger")
		r.release()
	})
}

func TestCloseSendsWhatIsQueuedWithoutLingering(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var r recorder
		g := New(Options{Linger: time.Hour}, r.call)
		start := time.Now()
		g.Add(1)
		g.Add(2)
		synctest.Wait()
		assert.Empty(t, r.got(), "lingering")
		g.Close()
		assert.Equal(t, [][]int{{1, 2}}, r.got(), "Close waits for the call it sends")
		assert.Zero(t, time.Since(start), "without waiting Linger")

		g.Add(3) // after Close: still sent, at once
		synctest.Wait()
		assert.Equal(t, [][]int{{1, 2}, {3}}, r.got())
		g.Close()
	})
}

func TestADoWhoseContextEndsWhileQueuedIsLeftOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var r recorder
		g := New(Options{}, r.call)
		defer g.Close()
		r.hold()
		first := do(g, t.Context(), 1)
		synctest.Wait()
		ctx, cancel := context.WithCancel(t.Context())
		gaveUp := do(g, ctx, 2)
		kept := do(g, t.Context(), 3)
		synctest.Wait()
		require.Equal(t, 2, g.Queued())
		cancel()
		require.ErrorIs(t, <-gaveUp, context.Canceled)
		assert.Equal(t, 1, g.Queued(), "taken out of the queue")
		r.release()
		require.NoError(t, <-first)
		require.NoError(t, <-kept)
		assert.Equal(t, [][]int{{1}, {3}}, r.got(), "the request that gave up was never sent")
	})
}

func TestADoWhoseBatchIsInFlightGetsItsAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var r recorder
		g := New(Options{}, r.call)
		defer g.Close()
		r.hold()
		ctx, cancel := context.WithCancel(t.Context())
		done := do(g, ctx, 1)
		synctest.Wait()
		cancel()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Do returned %v while its batch was in flight", err)
		default:
		}
		r.release()
		assert.NoError(t, <-done, "the caller learns the outcome of what was sent")
	})
}

func TestTakeCarriesWhatAddQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var r recorder
		g := New(Options{Linger: time.Hour}, r.call)
		defer g.Close()
		for i := range 5 {
			g.Add(i)
		}
		assert.Equal(t, []int{0, 1, 2}, g.Take(3), "the oldest first, at most n")
		assert.Equal(t, 2, g.Queued())

		// A Do queued behind them stays for a call: Take hands out only
		// what nobody waits for.
		done := do(g, t.Context(), 7)
		synctest.Wait()
		assert.Equal(t, []int{3, 4}, g.Take(10))
		assert.Nil(t, g.Take(10))
		assert.Equal(t, 1, g.Queued())
		require.NoError(t, <-done)
		assert.Equal(t, [][]int{{7}}, r.got(), "what Take carried off is not sent again")
	})
}
