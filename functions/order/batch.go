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
