package state

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/runtime/batch"
)

// GroupTimeout bounds the write of one batch of a Group, its attempts
// included.
const GroupTimeout = 10 * time.Second

// Group is Update for a key many callers change at once, with group commit:
// the changes to a key that arrive while a write of it is in flight are
// applied together, in order, by the next Update (one batch.Group per key),
// so a hot key costs a read and a write per batch rather than per change,
// and other processes, not goroutines, are what conflict. The zero Group is
// not usable; NewGroup makes one.
type Group[T any] struct {
	store bindings.StateStore
	init  func(key string) T
	opts  []Option
	keys  sync.Map // key -> *batch.Group[func(*T) bool, struct{}]
}

// NewGroup returns a Group over store. init gives the value of a key that is
// not stored (nil: the zero T); opts tune every Update.
func NewGroup[T any](store bindings.StateStore, init func(key string) T, opts ...Option) *Group[T] {
	if init == nil {
		init = func(string) (zero T) { return zero }
	}
	return &Group[T]{store: store, init: init, opts: opts}
}

// Update applies change to the value under key, in one Update with the
// changes of other callers; change returns false when it changed nothing,
// and may run more than once (once per attempt). Update returns the batch's
// outcome: nil once the value is written (or nothing was to be written).
// If ctx ends before the batch's attempt, change is left out and Update
// returns ctx's error; once the batch is attempted, Update waits for it, so
// the caller knows whether its change took effect.
func (g *Group[T]) Update(ctx context.Context, key string, change func(v *T) bool) error {
	b, ok := g.keys.Load(key)
	if !ok {
		b, _ = g.keys.LoadOrStore(key, batch.New(batch.Options{}, func(calls []*batch.Call[func(*T) bool, struct{}]) {
			g.write(key, calls)
		}))
	}
	_, err := b.(*batch.Group[func(*T) bool, struct{}]).Do(ctx, change)
	return err
}

// Close waits for the writes queued. A Group keeps serving after Close.
func (g *Group[T]) Close() {
	g.keys.Range(func(_, b any) bool { b.(*batch.Group[func(*T) bool, struct{}]).Close(); return true })
}

// write applies the changes of calls with one Update. Before each attempt,
// the calls whose caller gave up are answered with its context's error and
// left out.
func (g *Group[T]) write(key string, calls []*batch.Call[func(*T) bool, struct{}]) {
	ctx, cancel := context.WithTimeout(context.Background(), GroupTimeout)
	defer cancel()
	_, err := Update(ctx, g.store, key, func(v *T, found bool) error {
		if !found {
			*v = g.init(key)
		}
		calls = slices.DeleteFunc(calls, func(c *batch.Call[func(*T) bool, struct{}]) bool {
			err := c.Context().Err()
			if err != nil {
				c.Answer(struct{}{}, err)
			}
			return err != nil
		})
		changed := false
		for _, c := range calls {
			changed = c.In(v) || changed
		}
		if !changed {
			return ErrUnchanged
		}
		return nil
	}, g.opts...)
	for _, c := range calls {
		c.Answer(struct{}{}, err)
	}
}
