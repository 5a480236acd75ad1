package order

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/runtime"
)

// Archive stores confirmed orders outside the state store (order storage).
type Archive interface {
	Write(ctx context.Context, id string, record any) error
}

// OutboxConfig configures an Outbox.
type OutboxConfig struct {
	Pubsub, Topic string
	Source        string // the CloudEvent source, e.g. the app-id
	// Block is how many sequence numbers one reservation covers (1000).
	Block int64
	// RetryAfter: pending records older than this are re-driven by Sweep (5 s).
	RetryAfter time.Duration
	// StaleAfter: owners without a heartbeat for this long are adopted (60 s).
	StaleAfter time.Duration
	// FlushEvery batches the deletes of delivered records (100 ms).
	FlushEvery time.Duration
	// DeliveryWait is how long an order waits for its event's delivery
	// (publish and archive) before it is answered without it (1 s). An order
	// that waited so long puts the outbox in deferred mode: the next orders
	// leave their events to Sweep at once, until a sweep delivers again.
	DeliveryWait time.Duration
	// SigningKey signs every event (orderevent.Key of the deployment's
	// internal credential), so the notification can tell them from events
	// posted by anybody else; nil publishes them unsigned.
	SigningKey []byte
}

// EventType is the CloudEvent type of order events.
const EventType = "com.daprfn.order.confirmed"

// Outbox makes an order and its event one atomic step. Each process is an
// owner with a random id; it writes each order's pending record under
// outbox-<owner>-<seq> in the order's transaction, and sequence numbers are
// reserved in blocks recorded in the owner's heartbeat before use, so a
// sweeper can enumerate every record an owner may have left, even after it
// died. Delivered records are deleted in batches.
type Outbox struct {
	store   bindings.StateStore
	pub     bindings.Publisher
	archive Archive
	cfg     OutboxConfig
	log     *slog.Logger

	mu         sync.Mutex
	owner      string
	registered bool
	next       int64
	reserved   int64
	pending    map[string]pendingRef // marker key -> ref
	// deferred: a delivery outlasted DeliveryWait and no sweep has delivered
	// since, so orders do not wait for their events.
	deferred bool

	deletes *batcher[string]
	// sweeping is held by the running Sweep: a cron binding fires on
	// schedule even while the previous sweep still waits on the sidecar.
	sweeping sync.Mutex
}

type pendingRef struct {
	seq       int64
	at        time.Time
	committed bool // the record's transaction succeeded; before that the sweep leaves it alone
}

// pendingRecord is the stored outbox record.
type pendingRecord struct {
	Order Order     `json:"order"`
	At    time.Time `json:"at"`
}

// heartbeat is an owner's liveness and the range of sequence numbers it may
// have used: [Low, Reserved).
type heartbeat struct {
	Owner     string    `json:"owner"`
	Low       int64     `json:"low"`
	Reserved  int64     `json:"reserved"`
	Beat      time.Time `json:"beat"`
	AdoptedBy string    `json:"adoptedBy,omitempty"`
}

const registryKey = "outbox-owners"

type registry struct {
	Owners []string `json:"owners"`
}

// NewOutbox returns an Outbox and starts its delete batcher; Close stops it.
// It makes no sidecar call until the first order or sweep.
func NewOutbox(store bindings.StateStore, pub bindings.Publisher, archive Archive, cfg OutboxConfig, log *slog.Logger) (*Outbox, error) {
	if store == nil || pub == nil || archive == nil {
		return nil, errors.New("outbox: state store, publisher and archive are required")
	}
	if cfg.Pubsub == "" || cfg.Topic == "" || cfg.Source == "" {
		return nil, errors.New("outbox: pubsub, topic and source are required")
	}
	if cfg.Block <= 0 {
		cfg.Block = 1000
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 5 * time.Second
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = 60 * time.Second
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = 100 * time.Millisecond
	}
	if cfg.DeliveryWait <= 0 {
		cfg.DeliveryWait = time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ob := &Outbox{store: store, pub: pub, archive: archive, cfg: cfg, log: log, owner: newOwner(),
		pending: map[string]pendingRef{}}
	ob.deletes = newBatcher(cfg.FlushEvery, 200, ob.deleteBatch)
	return ob, nil
}

func newOwner() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func markerKey(owner string, seq int64) string {
	return "outbox-" + owner + "-" + strconv.FormatInt(seq, 10)
}

func heartbeatKey(owner string) string { return "outbox-owner-" + owner }

// Owner returns this process's owner id.
func (ob *Outbox) Owner() string { ob.mu.Lock(); defer ob.mu.Unlock(); return ob.owner }

// Pending returns how many records this process has not yet seen delivered.
func (ob *Outbox) Pending() int { ob.mu.Lock(); defer ob.mu.Unlock(); return len(ob.pending) }

// Commit applies ops (the order's writes) together with o's pending record
// in one transaction, then delivers o's event and archives o. A delivery
// failure after the commit is not an error: the record stays pending and
// Sweep delivers it later.
func (ob *Outbox) Commit(ctx context.Context, o Order, ops []bindings.StateOp) error {
	key, err := ob.reserve(ctx)
	if err != nil {
		return err
	}
	rec, _ := json.Marshal(pendingRecord{Order: o, At: time.Now().UTC()})
	if err := ob.store.Transact(ctx, append(ops, bindings.StateOp{Key: key, Value: rec})); err != nil {
		// It may have landed all the same: the sweep reads the record after
		// RetryAfter and delivers it if it exists, forgets it if not.
		ob.committed(key)
		return fmt.Errorf("commit order %s: %w", o.ID, err)
	}
	ob.committed(key)
	if ob.Deferred() {
		return nil // the sweep delivers it
	}
	dctx, cancel := context.WithTimeout(ctx, ob.cfg.DeliveryWait)
	defer cancel()
	if err := ob.deliver(dctx, o); err != nil {
		if dctx.Err() != nil && ctx.Err() == nil {
			ob.setDeferred(true, err)
		}
		ob.log.Warn("order committed, event delivery deferred to the outbox sweep", "order", o.ID, "error", err.Error())
		return nil
	}
	ob.deletes.add(key)
	return nil
}

// Deferred tells whether orders currently leave their events to the sweep:
// a delivery outlasted DeliveryWait (a pub/sub whose publish blocks while
// the subscriber is stuck, as pubsub.in-memory's does, or a broker that
// hangs), and no sweep has delivered since. An order then waits for its
// commit only; one stuck event does not hold every order after it.
func (ob *Outbox) Deferred() bool { ob.mu.Lock(); defer ob.mu.Unlock(); return ob.deferred }

func (ob *Outbox) setDeferred(on bool, cause error) {
	ob.mu.Lock()
	changed := ob.deferred != on
	ob.deferred = on
	ob.mu.Unlock()
	switch {
	case changed && on:
		ob.log.Warn("delivering an order event (publish and archive) took longer than the delivery wait: until the outbox sweep delivers again, orders are answered without waiting for their events, which the sweep delivers",
			"wait", ob.cfg.DeliveryWait.String(), "error", cause.Error())
	case changed:
		ob.log.Info("order events are delivered with their orders again")
	}
}

// deliver publishes o's event (its id is the order id, so redelivery is
// idempotent for consumers) and archives o.
func (ob *Outbox) deliver(ctx context.Context, o Order) error {
	ev := bindings.Event{ID: o.ID, Source: ob.cfg.Source, Type: EventType, Subject: o.ID, Data: EventOf(o).Signed(ob.cfg.SigningKey)}
	if err := ob.pub.Publish(ctx, ob.cfg.Pubsub, ob.cfg.Topic, ev); err != nil {
		return err
	}
	return ob.archive.Write(ctx, o.ID, o)
}

// reserve returns the marker key for the next order, persisting a new block
// of sequence numbers in the heartbeat first when the current one is used up.
func (ob *Outbox) reserve(ctx context.Context) (string, error) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.next >= ob.reserved {
		if err := ob.extendLocked(ctx); err != nil {
			return "", err
		}
	}
	key := markerKey(ob.owner, ob.next)
	ob.pending[key] = pendingRef{seq: ob.next, at: time.Now()}
	ob.next++
	return key, nil
}

// extendLocked registers the owner when needed and reserves another block.
// If another process adopted this owner (it looked dead), a new owner id is
// taken: the adopter delivers what the old one left.
func (ob *Outbox) extendLocked(ctx context.Context) error {
	for range 2 {
		if !ob.registered {
			if err := ob.registerLocked(ctx); err != nil {
				return err
			}
		}
		hb := heartbeat{Owner: ob.owner, Low: ob.lowLocked(), Reserved: ob.reserved + ob.cfg.Block, Beat: time.Now().UTC()}
		err := ob.saveHeartbeatLocked(ctx, hb)
		if err == nil {
			ob.reserved = hb.Reserved
			return nil
		}
		if !errors.Is(err, bindings.ErrConflict) {
			return fmt.Errorf("reserve outbox sequence numbers: %w", err)
		}
		ob.log.Warn("outbox owner was adopted by another process; continuing as a new owner", "old", ob.owner)
		ob.owner, ob.registered, ob.next, ob.reserved = newOwner(), false, 0, 0
		ob.pending = map[string]pendingRef{}
	}
	return errors.New("reserve outbox sequence numbers: lost the heartbeat twice")
}

func (ob *Outbox) registerLocked(ctx context.Context) error {
	hb, _ := json.Marshal(heartbeat{Owner: ob.owner, Beat: time.Now().UTC()})
	if err := ob.store.Save(ctx, heartbeatKey(ob.owner), hb, ""); err != nil {
		return fmt.Errorf("register outbox owner %s: %w", ob.owner, err)
	}
	owner := ob.owner
	if err := ob.updateRegistry(ctx, func(r *registry) { r.Owners = append(r.Owners, owner) }); err != nil {
		return err
	}
	ob.registered = true
	ob.log.Info("outbox owner registered", "owner", owner)
	return nil
}

// saveHeartbeatLocked writes hb over the owner's current heartbeat; it is
// ErrConflict when the heartbeat was adopted (claimed or deleted).
func (ob *Outbox) saveHeartbeatLocked(ctx context.Context, hb heartbeat) error {
	key := heartbeatKey(hb.Owner)
	it, err := ob.store.Get(ctx, key)
	if err != nil {
		return err
	}
	var cur heartbeat
	if !it.Found || json.Unmarshal(it.Value, &cur) != nil || cur.AdoptedBy != "" {
		return bindings.ErrConflict
	}
	b, _ := json.Marshal(hb)
	return ob.store.Save(ctx, key, b, it.ETag)
}

func (ob *Outbox) updateRegistry(ctx context.Context, change func(*registry)) error {
	for attempt := range 20 {
		it, err := ob.store.Get(ctx, registryKey)
		if err != nil {
			return fmt.Errorf("read outbox registry: %w", err)
		}
		var r registry
		if it.Found {
			if err := json.Unmarshal(it.Value, &r); err != nil {
				return fmt.Errorf("outbox registry %s is corrupt: %w", registryKey, err)
			}
		}
		change(&r)
		b, _ := json.Marshal(r)
		err = ob.store.Save(ctx, registryKey, b, it.ETag)
		if err == nil {
			return nil
		}
		if !errors.Is(err, bindings.ErrConflict) {
			return fmt.Errorf("write outbox registry: %w", err)
		}
		time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
	}
	return errors.New("outbox registry: too many conflicting writers")
}

func (ob *Outbox) lowLocked() int64 {
	low := ob.next
	for _, p := range ob.pending {
		low = min(low, p.seq)
	}
	return low
}

func (ob *Outbox) committed(key string) {
	ob.mu.Lock()
	if p, ok := ob.pending[key]; ok {
		p.committed = true
		ob.pending[key] = p
	}
	ob.mu.Unlock()
}

func (ob *Outbox) forget(key string) {
	ob.mu.Lock()
	delete(ob.pending, key)
	ob.mu.Unlock()
}

// deleteBatch deletes delivered records in one transaction.
func (ob *Outbox) deleteBatch(keys []string) {
	ops := make([]bindings.StateOp, len(keys))
	for i, k := range keys {
		ops[i] = bindings.StateOp{Key: k, Delete: true}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ob.store.Transact(ctx, ops); err != nil {
		// The records stay pending; the sweep finds them delivered
		// (consumers deduplicate) and deletes them then.
		ob.log.Warn("deleting delivered outbox records failed", "records", len(keys), "error", err.Error())
		return
	}
	ob.mu.Lock()
	for _, k := range keys {
		delete(ob.pending, k)
	}
	ob.mu.Unlock()
}

// Close flushes pending deletes and stops the batcher.
func (ob *Outbox) Close() { ob.deletes.close() }

// Sweep is the outbox's cron step: it re-delivers this process's records
// older than RetryAfter, writes the heartbeat, and adopts the records of
// owners whose heartbeat is older than StaleAfter. A sweep that fires while
// the previous one runs does nothing.
func (ob *Outbox) Sweep(ctx context.Context, _ runtime.BindingEvent[struct{}]) error {
	if !ob.sweeping.TryLock() {
		ob.log.Debug("outbox sweep skipped: the previous one is still running")
		return nil
	}
	defer ob.sweeping.Unlock()
	var errs []error
	if err := ob.sweepOwn(ctx); err != nil {
		errs = append(errs, err)
	}
	ob.mu.Lock()
	var err error
	if ob.registered {
		err = ob.saveHeartbeatLocked(ctx, heartbeat{Owner: ob.owner, Low: ob.lowLocked(), Reserved: ob.reserved, Beat: time.Now().UTC()})
		if errors.Is(err, bindings.ErrConflict) {
			ob.reserved = ob.next // the next order re-registers under a new owner
			err = nil
		}
	}
	ob.mu.Unlock()
	if err != nil {
		errs = append(errs, fmt.Errorf("outbox heartbeat: %w", err))
	}
	if err := ob.adoptStale(ctx); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return runtime.RetryLater(errors.Join(errs...))
	}
	return nil
}

func (ob *Outbox) sweepOwn(ctx context.Context) error {
	ob.mu.Lock()
	var keys []string
	cutoff := time.Now().Add(-ob.cfg.RetryAfter)
	for k, p := range ob.pending {
		// An uncommitted record may still be on its way into the store; only
		// its Commit may forget it.
		if p.committed && p.at.Before(cutoff) {
			keys = append(keys, k)
		}
	}
	ob.mu.Unlock()
	slices.Sort(keys)
	_, err := ob.redeliver(ctx, keys)
	if err == nil {
		// Every record due was delivered (or none was due): orders may wait
		// for their events again. If publishing is still slow, the next order
		// waits DeliveryWait once and defers again.
		ob.setDeferred(false, nil)
	}
	return err
}

// redeliver delivers and deletes every record found under keys and forgets
// the keys with no record. It returns how many records it delivered.
func (ob *Outbox) redeliver(ctx context.Context, keys []string) (int, error) {
	delivered := 0
	for chunk := range slices.Chunk(keys, 100) {
		items, err := ob.store.BulkGet(ctx, chunk)
		if err != nil {
			return delivered, fmt.Errorf("read outbox records: %w", err)
		}
		for _, it := range items {
			if !it.Found {
				ob.forget(it.Key) // the transaction never happened, or it was deleted
				continue
			}
			var rec pendingRecord
			if err := json.Unmarshal(it.Value, &rec); err != nil {
				ob.log.Error("corrupt outbox record left in place", "key", it.Key, "error", err.Error())
				continue
			}
			if err := ob.deliver(ctx, rec.Order); err != nil {
				return delivered, fmt.Errorf("redeliver order %s: %w", rec.Order.ID, err)
			}
			if err := ob.store.Delete(ctx, it.Key, ""); err != nil {
				return delivered, fmt.Errorf("delete outbox record %s: %w", it.Key, err)
			}
			ob.forget(it.Key)
			delivered++
		}
	}
	if delivered > 0 {
		ob.log.Info("outbox sweep redelivered orders", "orders", delivered)
	}
	return delivered, nil
}

func (ob *Outbox) adoptStale(ctx context.Context) error {
	it, err := ob.store.Get(ctx, registryKey)
	if err != nil || !it.Found {
		return err
	}
	var r registry
	if err := json.Unmarshal(it.Value, &r); err != nil {
		return fmt.Errorf("outbox registry %s is corrupt: %w", registryKey, err)
	}
	me := ob.Owner()
	for _, owner := range r.Owners {
		if owner == me {
			continue
		}
		if err := ob.adopt(ctx, owner); err != nil {
			return err
		}
	}
	return nil
}

// adopt delivers the records a silent owner left, then retires it.
func (ob *Outbox) adopt(ctx context.Context, owner string) error {
	key := heartbeatKey(owner)
	it, err := ob.store.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("read heartbeat of %s: %w", owner, err)
	}
	var hb heartbeat
	if it.Found {
		if err := json.Unmarshal(it.Value, &hb); err != nil {
			return fmt.Errorf("heartbeat of %s is corrupt: %w", owner, err)
		}
		if time.Since(hb.Beat) < ob.cfg.StaleAfter {
			return nil // alive, or being adopted right now
		}
		claim := hb
		claim.AdoptedBy, claim.Beat = ob.Owner(), time.Now().UTC()
		b, _ := json.Marshal(claim)
		if err := ob.store.Save(ctx, key, b, it.ETag); err != nil {
			if errors.Is(err, bindings.ErrConflict) {
				return nil // another process claimed it first
			}
			return fmt.Errorf("claim owner %s: %w", owner, err)
		}
		keys := make([]string, 0, max(hb.Reserved-hb.Low, 0))
		for seq := hb.Low; seq < hb.Reserved; seq++ {
			keys = append(keys, markerKey(owner, seq))
		}
		n, err := ob.redeliver(ctx, keys)
		if err != nil {
			return fmt.Errorf("adopt owner %s: %w", owner, err)
		}
		ob.log.Info("adopted a silent outbox owner", "owner", owner, "redelivered", n)
		if err := ob.store.Delete(ctx, key, ""); err != nil {
			return fmt.Errorf("retire owner %s: %w", owner, err)
		}
	}
	return ob.updateRegistry(ctx, func(r *registry) {
		r.Owners = slices.DeleteFunc(r.Owners, func(o string) bool { return o == owner })
	})
}
