package order

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/bindings/memory"
	"github.com/daprfn/shop/runtime"
)

type archiveRecorder struct {
	mu  sync.Mutex
	ids []string
}

func (a *archiveRecorder) Write(_ context.Context, id string, _ any) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ids = append(a.ids, id)
	return nil
}

func newTestOutbox(t *testing.T, store bindings.StateStore, pub bindings.Publisher, cfg OutboxConfig) *Outbox {
	t.Helper()
	cfg.Pubsub, cfg.Topic, cfg.Source = "pubsub", "orders", "order-service"
	ob, err := NewOutbox(store, pub, &archiveRecorder{}, cfg, nil)
	require.NoError(t, err)
	t.Cleanup(ob.Close)
	return ob
}

func testOrder(id string) Order {
	return Order{ID: id, ProductID: "product-1", Quantity: 1, CustomerEmail: "a@example.com", Status: "confirmed", CreatedAt: time.Now()}
}

func TestCommitDeliversAndDeletesTheRecord(t *testing.T) {
	store, pub := memory.NewStore(), &memory.Publisher{}
	ob := newTestOutbox(t, store, pub, OutboxConfig{FlushEvery: time.Millisecond})
	o := testOrder("order-1")
	require.NoError(t, ob.Commit(context.Background(), o, []bindings.StateOp{{Key: o.ID, Value: []byte(`{}`)}}))
	require.Len(t, pub.Published(), 1)
	assert.Equal(t, "order-1", pub.Published()[0].Event.ID)
	assert.Eventually(t, func() bool { return ob.Pending() == 0 }, time.Second, time.Millisecond)
	for _, k := range store.Keys() {
		assert.NotContains(t, k, "outbox-"+ob.Owner()+"-", "delivered records are deleted")
	}
}

func TestFailedTransactionLeavesNothing(t *testing.T) {
	store, pub := memory.NewStore(), &memory.Publisher{}
	ob := newTestOutbox(t, store, pub, OutboxConfig{RetryAfter: time.Millisecond})
	store.FailNextTransact(errors.New("down"))
	o := testOrder("order-2")
	err := ob.Commit(context.Background(), o, []bindings.StateOp{{Key: o.ID, Value: []byte(`{}`)}})
	require.Error(t, err)
	assert.Empty(t, pub.Published(), "no event without its order")
	it, _ := store.Get(context.Background(), o.ID)
	assert.False(t, it.Found)
	assert.Equal(t, 1, ob.Pending(), "a failed transaction may have landed: the sweep looks")
	time.Sleep(5 * time.Millisecond)
	require.NoError(t, ob.Sweep(context.Background(), runtime.BindingEvent[struct{}]{}))
	assert.Empty(t, pub.Published(), "it had not landed: nothing to deliver")
	assert.Equal(t, 0, ob.Pending(), "and nothing left to look for")
}

// landedStore applies a transaction and then reports it failed, as a
// deadline that expires on the way back does.
type landedStore struct {
	*memory.Store
	failNext bool
}

func (l *landedStore) Transact(ctx context.Context, ops []bindings.StateOp) error {
	err := l.Store.Transact(ctx, ops)
	if l.failNext && err == nil {
		l.failNext = false
		return context.DeadlineExceeded
	}
	return err
}

func TestTransactionThatLandedDespiteItsErrorIsDelivered(t *testing.T) {
	store, pub := &landedStore{Store: memory.NewStore()}, &memory.Publisher{}
	ob := newTestOutbox(t, store, pub, OutboxConfig{RetryAfter: time.Millisecond})
	require.NoError(t, ob.Commit(context.Background(), testOrder("order-1"), nil)) // registers the owner
	store.failNext = true
	o := testOrder("order-2")
	require.Error(t, ob.Commit(context.Background(), o, []bindings.StateOp{{Key: o.ID, Value: []byte(`{}`)}}))
	time.Sleep(5 * time.Millisecond)
	require.NoError(t, ob.Sweep(context.Background(), runtime.BindingEvent[struct{}]{}))
	var ids []string
	for _, p := range pub.Published() {
		ids = append(ids, p.Event.ID)
	}
	n := 0
	for _, id := range ids {
		if id == "order-2" {
			n++
		}
	}
	assert.Equal(t, 1, n, "the order that landed gets its event once (order-1 may be redelivered before its batched delete): %v", ids)
}

func TestAnotherProcessAdoptsADeadOwnersEvents(t *testing.T) {
	store := memory.NewStore()
	deadPub := &memory.Publisher{}
	dead := newTestOutbox(t, store, deadPub, OutboxConfig{})
	// The first order registers the owner; the second's publish fails and the
	// process "dies" before any sweep.
	require.NoError(t, dead.Commit(context.Background(), testOrder("order-a"), nil))
	deadPub.FailNext(errors.New("broker down"))
	require.NoError(t, dead.Commit(context.Background(), testOrder("order-b"), nil))
	require.Len(t, deadPub.Published(), 1)

	livePub := &memory.Publisher{}
	live := newTestOutbox(t, store, livePub, OutboxConfig{StaleAfter: time.Millisecond})
	require.NoError(t, live.Commit(context.Background(), testOrder("order-c"), nil))
	time.Sleep(5 * time.Millisecond)
	require.NoError(t, live.Sweep(context.Background(), runtime.BindingEvent[struct{}]{}))

	var ids []string
	for _, p := range livePub.Published() {
		ids = append(ids, p.Event.ID)
	}
	// order-a may come again (its record's delete was still batched when the
	// owner died): consumers deduplicate. order-b must come.
	assert.Contains(t, ids, "order-b", "the dead owner's pending event is re-delivered")
	assert.Contains(t, ids, "order-c")
	assert.NotContains(t, ids, "order-d")
	it, err := store.Get(context.Background(), heartbeatKey(dead.Owner()))
	require.NoError(t, err)
	assert.False(t, it.Found, "the dead owner is retired")

	// The "dead" process comes back: it must continue under a new owner.
	require.NoError(t, dead.Sweep(context.Background(), runtime.BindingEvent[struct{}]{}))
	old := dead.Owner()
	require.NoError(t, dead.Commit(context.Background(), testOrder("order-d"), nil))
	assert.NotEqual(t, old, dead.Owner())
}

// blockingStore holds Transact until released, like a slow state store.
type blockingStore struct {
	*memory.Store
	entered chan struct{}
	release chan struct{}
}

func (b *blockingStore) Transact(ctx context.Context, ops []bindings.StateOp) error {
	if len(ops) > 0 && !ops[0].Delete {
		b.entered <- struct{}{}
		<-b.release
	}
	return b.Store.Transact(ctx, ops)
}

func TestSweepLeavesRecordsStillBeingCommitted(t *testing.T) {
	store := &blockingStore{Store: memory.NewStore(), entered: make(chan struct{}, 1), release: make(chan struct{})}
	pub := &memory.Publisher{}
	ob := newTestOutbox(t, store, pub, OutboxConfig{RetryAfter: time.Millisecond})
	pub.FailNext(errors.New("broker down"))
	done := make(chan error, 1)
	go func() { done <- ob.Commit(context.Background(), testOrder("order-slow"), nil) }()
	<-store.entered
	time.Sleep(5 * time.Millisecond)
	// The transaction is in flight and older than RetryAfter: the sweep must
	// not conclude the record will never exist.
	require.NoError(t, ob.Sweep(context.Background(), runtime.BindingEvent[struct{}]{}))
	close(store.release)
	require.NoError(t, <-done, "a failed publish after the commit is deferred, not an error")
	assert.Empty(t, pub.Published())
	time.Sleep(5 * time.Millisecond)
	require.NoError(t, ob.Sweep(context.Background(), runtime.BindingEvent[struct{}]{}))
	require.Len(t, pub.Published(), 1, "the sweep delivers the record once it is committed")
	assert.Equal(t, "order-slow", pub.Published()[0].Event.ID)
}

func TestOrderIDsAreUnguessable(t *testing.T) {
	seen := map[string]bool{}
	for range 10000 {
		id := NewID()
		require.Regexp(t, `^order-[0-9a-f]{32}$`, id, "order- and 128 random bits in hex")
		require.False(t, seen[id], "ids never repeat")
		seen[id] = true
	}
}

// stuckPublisher blocks every Publish until its context ends while stuck is
// set, as daprd's pubsub.in-memory does while the subscriber's previous
// delivery is still being retried; otherwise it publishes.
type stuckPublisher struct {
	memory.Publisher
	stuck    atomic.Bool
	attempts atomic.Int64
	entered  chan string // receives each stuck attempt's event id, when set
}

func (p *stuckPublisher) Publish(ctx context.Context, pubsub, topic string, ev bindings.Event) error {
	p.attempts.Add(1)
	if p.stuck.Load() {
		if p.entered != nil {
			p.entered <- ev.ID
		}
		<-ctx.Done()
		return ctx.Err()
	}
	return p.Publisher.Publish(ctx, pubsub, topic, ev)
}

func TestAStuckPublishDefersTheNextOrdersEventsToTheSweep(t *testing.T) {
	store, pub := memory.NewStore(), &stuckPublisher{}
	ob := newTestOutbox(t, store, pub, OutboxConfig{DeliveryWait: 20 * time.Millisecond, RetryAfter: time.Millisecond, FlushEvery: time.Millisecond})
	pub.stuck.Store(true)

	require.NoError(t, ob.Commit(context.Background(), testOrder("order-a"), nil), "the order is stored; its event waits for the sweep")
	assert.True(t, ob.Deferred(), "a delivery that outlasted the wait defers the next orders' events")
	assert.EqualValues(t, 1, pub.attempts.Load())

	require.NoError(t, ob.Commit(context.Background(), testOrder("order-b"), nil))
	assert.EqualValues(t, 1, pub.attempts.Load(), "a deferred order does not wait on the stuck publish at all")
	assert.Equal(t, 2, ob.Pending())

	pub.stuck.Store(false)
	time.Sleep(5 * time.Millisecond) // past RetryAfter
	require.NoError(t, ob.Sweep(context.Background(), runtime.BindingEvent[struct{}]{}))
	var ids []string
	for _, p := range pub.Published() {
		ids = append(ids, p.Event.ID)
	}
	assert.ElementsMatch(t, []string{"order-a", "order-b"}, ids, "the sweep delivers both")
	assert.False(t, ob.Deferred(), "a sweep that delivered ends deferred mode")

	require.NoError(t, ob.Commit(context.Background(), testOrder("order-c"), nil))
	require.Len(t, pub.Published(), 3, "orders wait for their events again")
	assert.Equal(t, "order-c", pub.Published()[2].Event.ID)
	assert.Eventually(t, func() bool { return ob.Pending() == 0 }, time.Second, time.Millisecond)
}

func TestAnOrderWhoseOwnDeadlineEndsDoesNotDeferTheOthers(t *testing.T) {
	store, pub := memory.NewStore(), &stuckPublisher{}
	ob := newTestOutbox(t, store, pub, OutboxConfig{DeliveryWait: time.Hour})
	pub.stuck.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	require.NoError(t, ob.Commit(ctx, testOrder("order-late"), nil))
	assert.False(t, ob.Deferred(), "the caller's deadline, not the delivery wait, ended this one")
}

func TestASweepThatFiresWhileOneRunsDoesNothing(t *testing.T) {
	store, pub := memory.NewStore(), &stuckPublisher{entered: make(chan string, 4)}
	ob := newTestOutbox(t, store, pub, OutboxConfig{DeliveryWait: time.Millisecond, RetryAfter: time.Millisecond})
	pub.stuck.Store(true)
	require.NoError(t, ob.Commit(context.Background(), testOrder("order-s"), nil))
	<-pub.entered // the order's own attempt
	time.Sleep(5 * time.Millisecond)

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { first <- ob.Sweep(ctx, runtime.BindingEvent[struct{}]{}) }()
	assert.Equal(t, "order-s", <-pub.entered, "the first sweep is redelivering")
	bounded, stop := context.WithTimeout(context.Background(), time.Second) // a failure, not a hang, if it did wait
	defer stop()
	require.NoError(t, ob.Sweep(bounded, runtime.BindingEvent[struct{}]{}))
	assert.EqualValues(t, 2, pub.attempts.Load(), "the second sweep published nothing")
	cancel()
	assert.Error(t, <-first, "the first sweep's redelivery failed and says so")
	assert.Equal(t, 1, ob.Pending(), "the record stays for the next sweep")
}
