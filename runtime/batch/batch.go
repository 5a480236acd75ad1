package batch

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/daprfn/shop/internal/workers"
)

// Options tune a Group.
type Options struct {
	// Max is the most requests one call carries (default 1000).
	Max int
	// Linger is how long the first request of a batch waits for others
	// before the call goes (0: it goes at once). Close does not wait for it.
	Linger time.Duration
}

// Call is one request of a batch. The call function must Answer every
// call of its batch exactly once.
type Call[T, R any] struct {
	ctx  context.Context
	In   T
	done chan result[R] // buffered; nil for requests queued by Add
}

type result[R any] struct {
	out R
	err error
}

// Context is the requester's context (context.Background for Add).
func (c *Call[T, R]) Context() context.Context { return c.ctx }

// Answer gives the requester its outcome.
func (c *Call[T, R]) Answer(out R, err error) {
	if c.done != nil {
		c.done <- result[R]{out, err}
	}
}

// Group sends requests in batches through one call function, one call at a
// time. The zero Group is not usable; New makes one.
type Group[T, R any] struct {
	opt    Options
	call   func(batch []*Call[T, R])
	drains *workers.Pool // runs drain on a goroutine whose stack already fits a call

	mu       sync.Mutex
	queue    []*Call[T, R]
	running  bool          // a drain is running (lingering or calling)
	idle     chan struct{} // closed when the running drain ends; nil when none runs
	closed   bool
	closeNow chan struct{} // closed by Close: lingering ends
}

// New returns a Group that sends batches through call.
func New[T, R any](opt Options, call func(batch []*Call[T, R])) *Group[T, R] {
	if opt.Max <= 0 {
		opt.Max = 1000
	}
	return &Group[T, R]{opt: opt, call: call, drains: workers.New(0), closeNow: make(chan struct{})}
}

// Do queues in and waits for its answer. A request whose ctx ends while it
// is still queued is left out of every batch and Do returns ctx's error;
// once its batch is sent, Do waits for the answer, so the caller knows
// whether it took effect: the call function must bound its own time.
func (g *Group[T, R]) Do(ctx context.Context, in T) (R, error) {
	c := &Call[T, R]{ctx: ctx, In: in, done: make(chan result[R], 1)}
	g.enqueue(c)
	select {
	case r := <-c.done:
		return r.out, r.err
	case <-ctx.Done():
	}
	if g.remove(c) {
		var zero R
		return zero, ctx.Err()
	}
	r := <-c.done // in flight: its outcome is coming
	return r.out, r.err
}

// Add queues in without waiting for its answer.
func (g *Group[T, R]) Add(in T) {
	g.enqueue(&Call[T, R]{ctx: context.Background(), In: in})
}

// Take removes up to n requests queued by Add, oldest first, for another
// call to carry along; that call answers for them. Requests queued by Do
// stay queued.
func (g *Group[T, R]) Take(n int) []T {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []T
	g.queue = slices.DeleteFunc(g.queue, func(c *Call[T, R]) bool {
		if c.done != nil || len(out) >= n {
			return false
		}
		out = append(out, c.In)
		return true
	})
	return out
}

// Queued is how many requests wait for a call.
func (g *Group[T, R]) Queued() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}

// Close sends what is queued without lingering and waits until no call
// runs; no goroutine of the Group outlives its call. A Group keeps serving
// after Close, without lingering, so a request that comes late is still
// sent.
func (g *Group[T, R]) Close() {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.closeNow)
		g.drains.Close()
	}
	if len(g.queue) > 0 && !g.running {
		g.startLocked()
	}
	idle := g.idle
	g.mu.Unlock()
	if idle != nil {
		<-idle
	}
}

func (g *Group[T, R]) enqueue(c *Call[T, R]) {
	g.mu.Lock()
	g.queue = append(g.queue, c)
	if !g.running {
		g.startLocked()
	}
	g.mu.Unlock()
}

func (g *Group[T, R]) startLocked() {
	g.running = true
	idle := make(chan struct{})
	g.idle = idle
	g.drains.Go(func() { g.drain(idle) })
}

// remove takes c out of the queue; false when it was sent already.
func (g *Group[T, R]) remove(c *Call[T, R]) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	i := slices.Index(g.queue, c)
	if i < 0 {
		return false
	}
	g.queue = slices.Delete(g.queue, i, i+1)
	return true
}

func (g *Group[T, R]) drain(idle chan struct{}) {
	defer close(idle)
	for {
		g.linger()
		g.mu.Lock()
		n := min(len(g.queue), g.opt.Max)
		if n == 0 {
			g.running = false
			g.idle = nil
			g.mu.Unlock()
			return
		}
		batch := slices.Clone(g.queue[:n])
		g.queue = slices.Delete(g.queue, 0, n)
		g.mu.Unlock()
		g.call(batch)
	}
}

// linger waits Linger for company, unless the Group is closed or a full
// batch is queued.
func (g *Group[T, R]) linger() {
	if g.opt.Linger <= 0 {
		return
	}
	g.mu.Lock()
	full := len(g.queue) >= g.opt.Max
	g.mu.Unlock()
	if full {
		return
	}
	t := time.NewTimer(g.opt.Linger)
	defer t.Stop()
	select {
	case <-t.C:
	case <-g.closeNow:
	}
}
