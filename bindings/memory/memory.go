package memory

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/runtime"
)

// Store is an in-memory bindings.StateStore with ETags. The zero value is
// not usable; call NewStore.
type Store struct {
	mu         sync.Mutex
	items      map[string]entry
	seq        int64
	failNextTx error // fails the next Transact
}

// FailNextTransact makes the next Transact return err.
func (s *Store) FailNextTransact(err error) {
	s.mu.Lock()
	s.failNextTx = err
	s.mu.Unlock()
}

type entry struct {
	value   []byte
	etag    string
	expires time.Time // zero: never
}

// live returns key's entry unless it is missing or expired; an expired one
// is forgotten.
func (s *Store) live(key string) (entry, bool) {
	e, ok := s.items[key]
	if ok && !e.expires.IsZero() && !time.Now().Before(e.expires) {
		delete(s.items, key)
		return entry{}, false
	}
	return e, ok
}

var _ bindings.StateStore = (*Store)(nil)

// NewStore returns an empty Store.
func NewStore() *Store { return &Store{items: map[string]entry{}} }

// Keys returns the stored keys, sorted.
func (s *Store) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.items {
		s.live(k)
	}
	return slices.Sorted(maps.Keys(s.items))
}

// Get implements bindings.StateStore.
func (s *Store) Get(_ context.Context, key string) (bindings.StateItem, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.get(key), nil
}

func (s *Store) get(key string) bindings.StateItem {
	e, ok := s.live(key)
	if !ok {
		return bindings.StateItem{Key: key}
	}
	return bindings.StateItem{Key: key, Value: slices.Clone(e.value), ETag: e.etag, Found: true}
}

// BulkGet implements bindings.StateStore.
func (s *Store) BulkGet(_ context.Context, keys []string) ([]bindings.StateItem, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]bindings.StateItem, len(keys))
	for i, k := range keys {
		out[i] = s.get(k)
	}
	return out, nil
}

// check reports whether op may be applied to the current state.
func (s *Store) check(op bindings.StateOp) error {
	e, ok := s.live(op.Key)
	switch {
	case op.Delete && op.ETag == "":
		return nil
	case op.ETag == "" && ok:
		return fmt.Errorf("create %s: %w", op.Key, bindings.ErrConflict)
	case op.ETag != "" && (!ok || e.etag != op.ETag):
		return fmt.Errorf("write %s: %w", op.Key, bindings.ErrConflict)
	}
	return nil
}

func (s *Store) apply(op bindings.StateOp) {
	if op.Delete {
		delete(s.items, op.Key)
		return
	}
	s.seq++
	e := entry{value: slices.Clone(op.Value), etag: strconv.FormatInt(s.seq, 10)}
	if op.TTL > 0 {
		e.expires = time.Now().Add(op.TTL)
	}
	s.items[op.Key] = e
}

// Save implements bindings.StateStore.
func (s *Store) Save(_ context.Context, key string, value []byte, etag string) error {
	return s.write([]bindings.StateOp{{Key: key, Value: value, ETag: etag}})
}

// Delete implements bindings.StateStore.
func (s *Store) Delete(_ context.Context, key, etag string) error {
	return s.write([]bindings.StateOp{{Key: key, ETag: etag, Delete: true}})
}

// Transact implements bindings.StateStore: all ops are checked first, then
// all applied.
func (s *Store) Transact(_ context.Context, ops []bindings.StateOp) error {
	s.mu.Lock()
	err := s.failNextTx
	s.failNextTx = nil
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.write(ops)
}

func (s *Store) write(ops []bindings.StateOp) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, op := range ops {
		if err := s.check(op); err != nil {
			return err
		}
	}
	for _, op := range ops {
		s.apply(op)
	}
	return nil
}

// Published is one event a Publisher received.
type Published struct {
	Pubsub, Topic string
	Event         bindings.Event
	CloudEvent    []byte // the structured CloudEvent as it would reach daprd
}

// Publisher is an in-memory bindings.Publisher. Deliver, when set, receives
// every event as the structured CloudEvent daprd would deliver.
type Publisher struct {
	mu        sync.Mutex
	published []Published
	failNext  error
	// Deliver is called synchronously after an event is recorded; its error
	// is returned by Publish.
	Deliver func(ctx context.Context, p Published) error
}

var _ bindings.Publisher = (*Publisher)(nil)

// FailNext makes the next Publish return err.
func (p *Publisher) FailNext(err error) { p.mu.Lock(); p.failNext = err; p.mu.Unlock() }

// Publish implements bindings.Publisher.
func (p *Publisher) Publish(ctx context.Context, pubsub, topic string, ev bindings.Event) error {
	body, err := bindings.EncodeCloudEvent(ctx, ev)
	if err != nil {
		return err
	}
	p.mu.Lock()
	if err := p.failNext; err != nil {
		p.failNext = nil
		p.mu.Unlock()
		return fmt.Errorf("publish %s: %w", ev.ID, err)
	}
	rec := Published{Pubsub: pubsub, Topic: topic, Event: ev, CloudEvent: body}
	p.published = append(p.published, rec)
	deliver := p.Deliver
	p.mu.Unlock()
	if deliver != nil {
		return deliver(ctx, rec)
	}
	return nil
}

// Published returns what was published, in order.
func (p *Publisher) Published() []Published {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.published)
}

// BindingCall is one output binding invocation.
type BindingCall struct {
	Name, Operation string
	Data            []byte
	Metadata        map[string]string
}

// Bindings is an in-memory bindings.OutputBinding that records every call.
type Bindings struct {
	mu       sync.Mutex
	calls    []BindingCall
	failNext map[string]error
}

var _ bindings.OutputBinding = (*Bindings)(nil)

// FailNext makes the next call of binding name return err.
func (b *Bindings) FailNext(name string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failNext == nil {
		b.failNext = map[string]error{}
	}
	b.failNext[name] = err
}

// InvokeBinding implements bindings.OutputBinding.
func (b *Bindings) InvokeBinding(_ context.Context, name, operation string, data []byte, md map[string]string) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.failNext[name]; err != nil {
		delete(b.failNext, name)
		return nil, fmt.Errorf("output binding %s: %w", name, err)
	}
	b.calls = append(b.calls, BindingCall{Name: name, Operation: operation, Data: slices.Clone(data), Metadata: maps.Clone(md)})
	return nil, nil
}

// Calls returns the calls made to binding name, in order.
func (b *Bindings) Calls(name string) []BindingCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []BindingCall
	for _, c := range b.calls {
		if c.Name == name {
			out = append(out, c)
		}
	}
	return out
}

// Components is a fixed bindings.Components.
type Components []runtime.Component

// LoadedComponents implements bindings.Components.
func (c Components) LoadedComponents(context.Context) ([]runtime.Component, error) {
	return slices.Clone(c), nil
}
