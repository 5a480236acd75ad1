package order

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/daprfn/shop/internal/workers"
)

// batcher collects values and hands them to flush in batches: when max have
// gathered or every interval, whichever comes first, and once more on close.
// flush runs on the batcher's own goroutine, one batch at a time.
type batcher[T any] struct {
	in        chan T
	closed    chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func newBatcher[T any](every time.Duration, max int, flush func([]T)) *batcher[T] {
	b := &batcher[T]{in: make(chan T, 4096), closed: make(chan struct{}), done: make(chan struct{})}
	go b.run(every, max, flush)
	return b
}

// add queues v; after close it is dropped.
func (b *batcher[T]) add(v T) {
	select {
	case b.in <- v:
	case <-b.closed:
	}
}

// close flushes what is queued and stops the batcher.
func (b *batcher[T]) close() {
	b.closeOnce.Do(func() { close(b.closed) })
	<-b.done
}

func (b *batcher[T]) run(every time.Duration, max int, flush func([]T)) {
	defer close(b.done)
	tick := time.NewTicker(every)
	defer tick.Stop()
	var batch []T
	send := func() {
		if len(batch) > 0 {
			flush(batch)
			batch = batch[:0]
		}
	}
	for {
		select {
		case v := <-b.in:
			batch = append(batch, v)
			if len(batch) >= max {
				send()
			}
		case <-tick.C:
			send()
		case <-b.closed:
			for {
				select {
				case v := <-b.in:
					batch = append(batch, v)
				default:
					send()
					return
				}
			}
		}
	}
}

// carryQueue holds values until a call that goes anyway carries them along
// (take), or, once the oldest has waited `after`, flush sends them on its
// own, up to max per flush: a busy process sends none on their own, an idle
// one holds them about `after` at most. flush runs on the queue's own
// goroutine, one batch at a time; close flushes what is left. Values restored
// after close are flushed at once by restore's caller, which may overlap the
// queue's last flush, so flush must be safe for concurrent use.
type carryQueue[T any] struct {
	after time.Duration
	max   int
	flush func([]T)

	mu     sync.Mutex
	items  []T
	since  time.Time // when the oldest of items was queued, or earlier
	closed bool

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func newCarryQueue[T any](after time.Duration, max int, flush func([]T)) *carryQueue[T] {
	q := &carryQueue[T]{after: after, max: max, flush: flush, stop: make(chan struct{}), done: make(chan struct{})}
	go q.run()
	return q
}

// add queues v; after close it is dropped.
func (q *carryQueue[T]) add(v T) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if len(q.items) == 0 {
		q.since = time.Now()
	}
	q.items = append(q.items, v)
}

// take removes and returns up to max of the oldest values, for a call to
// carry along.
func (q *carryQueue[T]) take(max int) []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.popLocked(max)
}

// popLocked removes and returns up to n of the oldest values, nil for none.
func (q *carryQueue[T]) popLocked(n int) []T {
	n = min(len(q.items), n)
	if n == 0 {
		return nil
	}
	out := slices.Clone(q.items[:n])
	q.items = slices.Delete(q.items, 0, n)
	return out
}

// restore puts taken values back in front, when the call that carried them
// failed; after close they are flushed at once.
func (q *carryQueue[T]) restore(vs []T) {
	if len(vs) == 0 {
		return
	}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		q.flush(vs)
		return
	}
	if len(q.items) == 0 {
		q.since = time.Now()
	}
	q.items = append(slices.Clone(vs), q.items...)
	q.mu.Unlock()
}

// close flushes what is queued and stops the queue.
func (q *carryQueue[T]) close() {
	q.closeOnce.Do(func() { close(q.stop) })
	<-q.done
}

// due removes and returns up to max values if the oldest has waited long
// enough (or always, when all is true).
func (q *carryQueue[T]) due(all bool) []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !all && time.Since(q.since) < q.after {
		return nil
	}
	return q.popLocked(q.max)
}

func (q *carryQueue[T]) run() {
	defer close(q.done)
	tick := time.NewTicker(max(q.after/2, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			for b := q.due(false); b != nil; b = q.due(false) {
				q.flush(b)
			}
		case <-q.stop:
			q.mu.Lock()
			q.closed = true
			q.mu.Unlock()
			for b := q.due(true); b != nil; b = q.due(true) {
				q.flush(b)
			}
			return
		}
	}
}

// groupCommit sends the requests that arrive while a call is in flight
// together in the next call: one call at a time, up to max requests each.
// A busy process pays one sidecar round trip for many requests; an idle one
// sends each at once. call must answer every entry of its batch once.
type groupCommit[T, R any] struct {
	max    int
	call   func(batch []*entry[T, R])
	drains *workers.Pool // runs drain, on a goroutine whose stack fits call

	mu       sync.Mutex
	queue    []*entry[T, R]
	inFlight bool
}

// entry is one request of a group commit.
type entry[T, R any] struct {
	ctx  context.Context // the requester's
	in   T
	done chan result[R] // buffered: the requester may have given up
}

type result[R any] struct {
	out R
	err error
}

func (e *entry[T, R]) answer(out R, err error) { e.done <- result[R]{out, err} }

func newGroupCommit[T, R any](max int, call func([]*entry[T, R])) *groupCommit[T, R] {
	return &groupCommit[T, R]{max: max, call: call, drains: workers.New(0)}
}

// do queues in and waits for its answer or for ctx to end. A request whose
// ctx ends before its batch is sent is left out of it; one whose ctx ends
// while its batch is in flight may still take effect.
func (g *groupCommit[T, R]) do(ctx context.Context, in T) (R, error) {
	e := &entry[T, R]{ctx: ctx, in: in, done: make(chan result[R], 1)}
	g.mu.Lock()
	g.queue = append(g.queue, e)
	lead := !g.inFlight
	g.inFlight = true
	g.mu.Unlock()
	if lead {
		g.drains.Go(g.drain)
	}
	select {
	case r := <-e.done:
		return r.out, r.err
	case <-ctx.Done():
		var zero R
		return zero, ctx.Err()
	}
}

// queued is how many requests wait for the next call.
func (g *groupCommit[T, R]) queued() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}

func (g *groupCommit[T, R]) drain() {
	for {
		g.mu.Lock()
		n := min(len(g.queue), g.max)
		if n == 0 {
			g.inFlight = false
			g.mu.Unlock()
			return
		}
		batch := g.queue[:n:n]
		g.queue = g.queue[n:]
		g.mu.Unlock()
		batch = slices.DeleteFunc(batch, func(e *entry[T, R]) bool { return e.ctx.Err() != nil })
		if len(batch) > 0 {
			g.call(batch)
		}
	}
}
