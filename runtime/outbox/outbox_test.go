package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/bindings/memory"
	"github.com/daprfn/shop/runtime"
	"github.com/daprfn/shop/runtime/outbox"
)

// archive records what After was handed.
type archive struct {
	mu  sync.Mutex
	ids []string
	raw []string
}

func (a *archive) after(_ context.Context, ev bindings.Event, att json.RawMessage) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ids = append(a.ids, ev.ID)
	a.raw = append(a.raw, string(att))
	return nil
}

func newOutbox(t *testing.T, store bindings.StateStore, pub bindings.Publisher, cfg outbox.Config) *outbox.Outbox {
	t.Helper()
	cfg.Store, cfg.Publisher, cfg.Pubsub, cfg.Topic, cfg.Source = store, pub, "pubsub", "orders", "order-service"
	ob, err := outbox.New(cfg)
	require.NoError(t, err)
	t.Cleanup(ob.Close)
	return ob
}

func msg(id string) outbox.Message {
	return outbox.Message{Event: bindings.Event{ID: id, Type: "com.example.placed", Data: map[string]any{"id": id}}, Attachment: map[string]string{"order": id}}
}

var tick = runtime.BindingEvent[struct{}]{}

func ids(pub *memory.Publisher) []string {
	var out []string
	for _, p := range pub.Published() {
		out = append(out, p.Event.ID)
	}
	return out
}

// records lists the outbox records left in store.
func records(store *memory.Store, owner string) []string {
	var out []string
	for _, k := range store.Keys() {
		if strings.HasPrefix(k, "outbox-"+owner+"-") {
			out = append(out, k)
		}
	}
	return out
}

func TestCommitWritesTheKeysPublishesAndDeletesTheRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store, pub, arch := memory.NewStore(), &memory.Publisher{}, &archive{}
		ob := newOutbox(t, store, pub, outbox.Config{After: arch.after})
		require.NoError(t, ob.Commit(t.Context(), []bindings.StateOp{{Key: "order-1", Value: []byte(`{"n":1}`)}}, msg("order-1")))

		it, _ := store.Get(t.Context(), "order-1")
		assert.JSONEq(t, `{"n":1}`, string(it.Value), "the caller's keys are written")
		require.Len(t, pub.Published(), 1)
		got := pub.Published()[0]
		assert.Equal(t, "order-1", got.Event.ID)
		assert.Equal(t, "order-service", got.Event.Source, "the configured source fills in")
		assert.Equal(t, []string{"order-1"}, arch.ids)
		assert.JSONEq(t, `{"order":"order-1"}`, arch.raw[0], "After gets the attachment")
		assert.NotEmpty(t, records(store, ob.Owner()), "the record's delete waits DeleteLinger for company")

		time.Sleep(100 * time.Millisecond) // the delete linger, in the bubble's fake time
		synctest.Wait()
		assert.Empty(t, records(store, ob.Owner()), "delivered records are deleted")
		assert.Zero(t, ob.Pending())
	})
}

func TestAFailedTransactionWritesAndPublishesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store, pub := memory.NewStore(), &memory.Publisher{}
		ob := newOutbox(t, store, pub, outbox.Config{})
		store.FailNextTransact(errors.New("down"))
		require.Error(t, ob.Commit(t.Context(), []bindings.StateOp{{Key: "order-2", Value: []byte(`{}`)}}, msg("order-2")))
		assert.Empty(t, pub.Published(), "no event without its keys")
		it, _ := store.Get(t.Context(), "order-2")
		assert.False(t, it.Found)
		assert.Equal(t, 1, ob.Pending(), "a failed transaction may have landed: the sweep looks")

		time.Sleep(6 * time.Second) // past RetryAfter
		require.NoError(t, ob.Sweep(t.Context(), tick))
		assert.Empty(t, pub.Published(), "it had not landed: nothing to deliver")
		assert.Zero(t, ob.Pending(), "and nothing left to look for")
	})
}

// landedStore applies a transaction and then reports it failed, as a
// deadline that expires on the way back does.
type landedStore struct {
	*memory.Store
	failNext atomic.Bool
}

func (l *landedStore) Transact(ctx context.Context, ops []bindings.StateOp) error {
	err := l.Store.Transact(ctx, ops)
	if err == nil && l.failNext.CompareAndSwap(true, false) {
		return context.DeadlineExceeded
	}
	return err
}

func TestATransactionThatLandedDespiteItsErrorIsDeliveredOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store, pub := &landedStore{Store: memory.NewStore()}, &memory.Publisher{}
		ob := newOutbox(t, store, pub, outbox.Config{})
		store.failNext.Store(true)
		require.Error(t, ob.Commit(t.Context(), nil, msg("order-2")))
		assert.Empty(t, pub.Published())
		time.Sleep(6 * time.Second)
		require.NoError(t, ob.Sweep(t.Context(), tick))
		assert.Equal(t, []string{"order-2"}, ids(pub))
		assert.Empty(t, records(store.Store, ob.Owner()))
		require.NoError(t, ob.Sweep(t.Context(), tick))
		assert.Equal(t, []string{"order-2"}, ids(pub), "delivered once")
	})
}

func TestAnotherProcessAdoptsADeadOwnersEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := memory.NewStore()
		deadPub := &memory.Publisher{}
		dead := newOutbox(t, store, deadPub, outbox.Config{})
		require.NoError(t, dead.Commit(t.Context(), nil, msg("order-a")))
		deadPub.FailNext(errors.New("broker down"))
		require.NoError(t, dead.Commit(t.Context(), nil, msg("order-b")), "a failed publish leaves the event to the sweep")
		deadOwner := dead.Owner()
		// The process "dies": no sweep of its own from now on.

		livePub := &memory.Publisher{}
		live := newOutbox(t, store, livePub, outbox.Config{})
		require.NoError(t, live.Commit(t.Context(), nil, msg("order-c")))
		require.NoError(t, live.Sweep(t.Context(), tick))
		assert.NotContains(t, ids(livePub), "order-b", "an owner with a fresh heartbeat is alive: left alone")

		time.Sleep(61 * time.Second) // past StaleAfter; the live one beats on each sweep
		require.NoError(t, live.Sweep(t.Context(), tick))
		assert.Contains(t, ids(livePub), "order-b", "the dead owner's pending event is delivered by the adopter")
		assert.Empty(t, records(store, deadOwner), "and its records deleted")
		it, _ := store.Get(t.Context(), "outbox-owner-"+deadOwner)
		require.True(t, it.Found, "the adopted owner stays listed while commits it sent may still land")
		assert.Contains(t, string(it.Value), `"adoptedBy":"`+live.Owner()+`"`)

		// The "dead" process comes back: it goes on under a new owner.
		require.NoError(t, dead.Sweep(t.Context(), tick))
		assert.NotEqual(t, deadOwner, dead.Owner(), "its sweep finds it was adopted: it goes on as a new owner at once")
		require.NoError(t, dead.Commit(t.Context(), nil, msg("order-d")))
		assert.NotEqual(t, deadOwner, dead.Owner())
		assert.Contains(t, ids(deadPub), "order-d")

		time.Sleep(10 * time.Minute) // LateCommits
		require.NoError(t, live.Sweep(t.Context(), tick))
		it, _ = store.Get(t.Context(), "outbox-owner-"+deadOwner)
		assert.False(t, it.Found, "the adopted owner is retired once LateCommits passed")
		assert.Equal(t, 1, strings.Count(strings.Join(ids(livePub), ","), "order-b"), "its event was delivered once")
	})
}

// lateStore lands the transaction it is told to hold only once released,
// and answers its caller with the caller's deadline meanwhile: a host cut
// off from the store keeps a sent transaction in its network stack and
// sends it once the link is back.
type lateStore struct {
	*memory.Store
	hold    atomic.Bool
	release chan struct{}
	landed  chan struct{}
}

func (s *lateStore) Transact(ctx context.Context, ops []bindings.StateOp) error {
	if !s.hold.CompareAndSwap(true, false) {
		return s.Store.Transact(ctx, ops)
	}
	go func() {
		<-s.release
		_ = s.Store.Transact(context.Background(), ops)
		close(s.landed)
	}()
	<-ctx.Done()
	return ctx.Err()
}

// A commit whose transaction reaches the store after another process
// adopted its owner (the owner's host was cut off) is delivered by a later
// sweep of the adopter.
func TestACommitThatLandsAfterItsOwnerWasAdoptedIsDelivered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &lateStore{Store: memory.NewStore(), release: make(chan struct{}), landed: make(chan struct{})}
		deadPub := &memory.Publisher{}
		dead := newOutbox(t, store, deadPub, outbox.Config{})
		require.NoError(t, dead.Commit(t.Context(), nil, msg("order-a")))
		store.hold.Store(true)
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		err := dead.Commit(ctx, nil, msg("order-late"))
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded, "its transaction did not answer in time")
		deadOwner := dead.Owner()
		// The process goes silent: cut off, it sweeps nothing from now on.

		livePub := &memory.Publisher{}
		live := newOutbox(t, store, livePub, outbox.Config{})
		require.NoError(t, live.Commit(t.Context(), nil, msg("order-live")))
		time.Sleep(61 * time.Second)
		require.NoError(t, live.Sweep(t.Context(), tick))
		require.NotContains(t, ids(livePub), "order-late", "adopted before the transaction landed")

		close(store.release) // the link is back
		<-store.landed
		time.Sleep(61 * time.Second)
		require.NoError(t, live.Sweep(t.Context(), tick))
		assert.Contains(t, ids(livePub), "order-late", "the adopter's next sweep delivers the late commit")
		assert.Empty(t, records(store.Store, deadOwner), "and deletes its record")
	})
}

// heldStore holds the calls hold says to hold until released, like a
// sidecar that hangs on them.
type heldStore struct {
	*memory.Store
	hold    func(op string, key string) bool
	entered chan string
	release chan struct{}
}

func newHeldStore(hold func(op, key string) bool) *heldStore {
	return &heldStore{Store: memory.NewStore(), hold: hold, entered: make(chan string, 64), release: make(chan struct{})}
}

func (s *heldStore) wait(op, key string) {
	if s.hold(op, key) {
		s.entered <- key
		<-s.release
	}
}

func (s *heldStore) Get(ctx context.Context, key string) (bindings.StateItem, error) {
	s.wait("get", key)
	return s.Store.Get(ctx, key)
}

func (s *heldStore) Transact(ctx context.Context, ops []bindings.StateOp) error {
	op := "transact"
	if ops[0].Delete {
		op = "delete"
	}
	s.wait(op, ops[len(ops)-1].Key)
	return s.Store.Transact(ctx, ops)
}

func TestSweepLeavesRecordsStillBeingCommitted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var holding atomic.Bool
		store := newHeldStore(func(op, key string) bool {
			return holding.Load() && op == "transact" && strings.HasPrefix(key, "outbox-")
		})
		pub := &memory.Publisher{}
		ob := newOutbox(t, store, pub, outbox.Config{})
		require.NoError(t, ob.Commit(t.Context(), nil, msg("order-0"))) // registers the owner
		holding.Store(true)
		pub.FailNext(errors.New("broker down"))
		done := make(chan error, 1)
		go func() { done <- ob.Commit(context.Background(), nil, msg("order-slow")) }()
		<-store.entered
		time.Sleep(6 * time.Second) // the record is older than RetryAfter, its transaction still in flight
		require.NoError(t, ob.Sweep(t.Context(), tick), "the sweep must not conclude the record will never exist")
		holding.Store(false)
		close(store.release)
		require.NoError(t, <-done, "a failed publish after the commit is left to the sweep, not an error")
		assert.Equal(t, []string{"order-0"}, ids(pub))

		time.Sleep(6 * time.Second)
		require.NoError(t, ob.Sweep(t.Context(), tick))
		assert.Equal(t, []string{"order-0", "order-slow"}, ids(pub), "the sweep delivers the record once it is committed")
	})
}

func TestASlowHeartbeatDoesNotHoldCommitsUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var holding atomic.Bool
		store := newHeldStore(func(op, key string) bool {
			return holding.Load() && op == "get" && strings.HasPrefix(key, "outbox-owner-")
		})
		pub := &memory.Publisher{}
		ob := newOutbox(t, store, pub, outbox.Config{Block: 10})
		require.NoError(t, ob.Commit(t.Context(), nil, msg("order-0"))) // registers: numbers 0-9
		holding.Store(true)
		for i := 1; i < 10; i++ { // half way, the next block is asked for, and its heartbeat hangs
			require.NoError(t, ob.Commit(t.Context(), nil, msg("order-"+string(rune('a'+i)))))
		}
		assert.Len(t, pub.Published(), 10, "commits went on while the heartbeat hung")
		synctest.Wait()
		require.Len(t, store.entered, 1, "one reservation of the next block is in flight")

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- ob.Commit(ctx, nil, msg("order-k")) }()
		synctest.Wait()
		assert.Empty(t, done, "the block is used up: the next commit waits for the reservation")
		cancel()
		assert.ErrorIs(t, <-done, context.Canceled, "and gives up with its context")

		holding.Store(false)
		close(store.release)
		synctest.Wait()
		require.NoError(t, ob.Commit(t.Context(), nil, msg("order-l")))
		assert.Len(t, pub.Published(), 11)
	})
}

func TestConcurrentCommitsOverManyBlocksAreEachDeliveredOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store, pub := memory.NewStore(), &memory.Publisher{}
		ob := newOutbox(t, store, pub, outbox.Config{Block: 7})
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := range 25 {
					id := "order-" + string(rune('a'+w)) + "-" + string(rune('a'+i))
					assert.NoError(t, ob.Commit(context.Background(), []bindings.StateOp{{Key: id, Value: []byte(`{}`)}}, msg(id)))
				}
			})
		}
		wg.Wait()
		got := ids(pub)
		assert.Len(t, got, 200)
		seen := map[string]bool{}
		for _, id := range got {
			assert.False(t, seen[id], "published twice: %s", id)
			seen[id] = true
		}
		time.Sleep(time.Second)
		synctest.Wait()
		assert.Zero(t, ob.Pending())
		assert.Empty(t, records(store, ob.Owner()))
		var hb struct{ Low, Reserved int64 }
		it, _ := store.Get(t.Context(), "outbox-owner-"+ob.Owner())
		require.NoError(t, json.Unmarshal(it.Value, &hb))
		assert.GreaterOrEqual(t, hb.Reserved, int64(200), "every number used was reserved in the heartbeat first")
	})
}

// stuckPublisher blocks every Publish until its context ends while stuck is
// set, as daprd's pubsub.in-memory does while the subscriber's previous
// delivery is still being retried; otherwise it publishes.
type stuckPublisher struct {
	memory.Publisher
	stuck    atomic.Bool
	attempts atomic.Int64
}

func (p *stuckPublisher) Publish(ctx context.Context, pubsub, topic string, ev bindings.Event) error {
	p.attempts.Add(1)
	if p.stuck.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return p.Publisher.Publish(ctx, pubsub, topic, ev)
}

func TestAStuckPublishDefersTheNextEventsToTheSweep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store, pub := memory.NewStore(), &stuckPublisher{}
		ob := newOutbox(t, store, pub, outbox.Config{DeliveryWait: 20 * time.Millisecond})
		pub.stuck.Store(true)

		start := time.Now()
		require.NoError(t, ob.Commit(t.Context(), nil, msg("order-a")), "committed; its event waits for the sweep")
		assert.Equal(t, 20*time.Millisecond, time.Since(start), "it waited DeliveryWait for the delivery")
		assert.True(t, ob.Deferred(), "a delivery that outlasted the wait defers the next events")

		start = time.Now()
		require.NoError(t, ob.Commit(t.Context(), nil, msg("order-b")))
		assert.Zero(t, time.Since(start), "a deferred commit does not wait on the stuck publish")
		assert.EqualValues(t, 1, pub.attempts.Load())
		assert.Equal(t, 2, ob.Pending())

		pub.stuck.Store(false)
		time.Sleep(6 * time.Second)
		require.NoError(t, ob.Sweep(t.Context(), tick))
		assert.ElementsMatch(t, []string{"order-a", "order-b"}, ids(&pub.Publisher), "the sweep delivers both")
		assert.False(t, ob.Deferred(), "a sweep that delivered ends deferred mode")

		require.NoError(t, ob.Commit(t.Context(), nil, msg("order-c")))
		assert.Len(t, pub.Published(), 3, "commits wait for their events again")
	})
}

func TestACommitWhoseOwnDeadlineEndsDoesNotDeferTheOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store, pub := memory.NewStore(), &stuckPublisher{}
		ob := newOutbox(t, store, pub, outbox.Config{DeliveryWait: time.Hour})
		require.NoError(t, ob.Commit(t.Context(), nil, msg("order-0")))
		pub.stuck.Store(true)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
		defer cancel()
		require.NoError(t, ob.Commit(ctx, nil, msg("order-late")))
		assert.False(t, ob.Deferred(), "the caller's deadline, not the delivery wait, ended this one")
	})
}

func TestASweepThatStartsWhileOneRunsDoesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store, pub := memory.NewStore(), &stuckPublisher{}
		ob := newOutbox(t, store, pub, outbox.Config{DeliveryWait: time.Millisecond})
		pub.stuck.Store(true)
		require.NoError(t, ob.Commit(t.Context(), nil, msg("order-s")))
		time.Sleep(6 * time.Second)

		ctx, cancel := context.WithCancel(t.Context())
		first := make(chan error, 1)
		go func() { first <- ob.Sweep(ctx, tick) }()
		synctest.Wait() // the first sweep is stuck redelivering
		require.EqualValues(t, 2, pub.attempts.Load())
		require.NoError(t, ob.Sweep(t.Context(), tick))
		assert.EqualValues(t, 2, pub.attempts.Load(), "the second sweep published nothing")
		cancel()
		assert.Error(t, <-first, "the first sweep's redelivery failed and says so")
		assert.Equal(t, 1, ob.Pending(), "the record stays for the next sweep")
	})
}

// noRollback applies each op of a transaction on its own, as Dapr's Redis
// store does, and reports a conflict if any op failed its condition.
type noRollback struct{ *memory.Store }

func (n noRollback) Transact(ctx context.Context, ops []bindings.StateOp) error {
	var failed error
	for _, op := range ops {
		if err := n.Store.Transact(ctx, []bindings.StateOp{op}); err != nil {
			failed = err
		}
	}
	return failed
}

func TestACommitWhoseConditionFailsNeverPublishesEvenWithoutRollback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store, pub := noRollback{memory.NewStore()}, &memory.Publisher{}
		ob := newOutbox(t, store, pub, outbox.Config{})
		require.NoError(t, store.Save(t.Context(), "order-1", []byte(`{}`), ""))
		err := ob.Commit(t.Context(), []bindings.StateOp{{Key: "order-1", Value: []byte(`{"again":true}`)}}, msg("order-1"))
		require.ErrorIs(t, err, bindings.ErrConflict)
		time.Sleep(6 * time.Second)
		require.NoError(t, ob.Sweep(t.Context(), tick))
		assert.Empty(t, pub.Published(), "the record the store wrote anyway is deleted unsent")
		assert.Empty(t, records(store.Store, ob.Owner()))
		assert.Zero(t, ob.Pending())
	})
}
