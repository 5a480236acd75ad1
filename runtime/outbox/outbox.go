package outbox

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
	"sync/atomic"
	"time"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/runtime/batch"
	"github.com/daprfn/shop/runtime/state"
)

// Config configures an Outbox.
type Config struct {
	Store     bindings.StateStore // required: the transactional state store
	Publisher bindings.Publisher  // required
	// Pubsub and Topic are where events go (required). Source is the
	// CloudEvent source of events that name none, e.g. the app-id.
	Pubsub, Topic, Source string
	// After, when set, runs after each event is published, with the
	// message's attachment; if it fails, the message is delivered again
	// (publish and After), so it must be idempotent. The order function
	// archives the order in it.
	After func(ctx context.Context, ev bindings.Event, attachment json.RawMessage) error
	// Prefix starts every key the outbox writes (default "outbox").
	Prefix string
	// Block is how many sequence numbers one heartbeat write reserves (1000).
	Block int64
	// RetryAfter: a pending record older than this is delivered again by
	// Sweep (5 s).
	RetryAfter time.Duration
	// StaleAfter: an owner without a heartbeat for this long is adopted (60 s).
	StaleAfter time.Duration
	// LateCommits is how long after adopting an owner Sweep still looks for
	// its records (10 min). A transaction the owner sent before it went
	// silent can reach the store much later: a host cut off from the store
	// holds it in its network stack, and sends it once the link is back.
	// Until then the adopted owner stays listed, and Sweep delivers what
	// landed every StaleAfter.
	LateCommits time.Duration
	// DeleteLinger is how long delivered records wait for others to be
	// deleted with them in one transaction (100 ms).
	DeleteLinger time.Duration
	// DeliveryWait is how long Commit waits for its event's delivery before
	// it returns without it (1 s). A delivery that took so long puts the
	// outbox in deferred mode: the next commits leave their events to Sweep
	// at once, until a sweep delivers again, so one stuck broker does not
	// hold every commit after it.
	DeliveryWait time.Duration
	// Now is the clock (time.Now).
	Now func() time.Time
	Log *slog.Logger
}

// Message is what Commit delivers: an event to publish, and an attachment
// stored with it (as JSON) and handed to Config.After.
type Message struct {
	Event      bindings.Event
	Attachment any
}

// record is a pending message as stored.
type record struct {
	ID         string          `json:"id"`
	Source     string          `json:"source"`
	Type       string          `json:"type"`
	Subject    string          `json:"subject,omitempty"`
	Data       json.RawMessage `json:"data"`
	Attachment json.RawMessage `json:"attachment,omitempty"`
	At         time.Time       `json:"at"`
}

func (r record) event() bindings.Event {
	return bindings.Event{ID: r.ID, Source: r.Source, Type: r.Type, Subject: r.Subject, Data: r.Data}
}

// heartbeat is an owner's liveness and the sequence numbers it may have
// used: [Low, Reserved).
type heartbeat struct {
	Owner     string    `json:"owner"`
	Low       int64     `json:"low"`
	Reserved  int64     `json:"reserved"`
	Beat      time.Time `json:"beat"`
	AdoptedBy string    `json:"adoptedBy,omitempty"`
	AdoptedAt time.Time `json:"adoptedAt,omitzero"` // its first adoption
}

// Outbox makes state writes and an event one atomic step; see the package
// documentation.
type Outbox struct {
	cfg    Config
	owners state.Index
	log    *slog.Logger

	mu       sync.Mutex
	owner    string
	next     int64 // the next sequence number
	reserved int64 // sequence numbers below it are reserved in the heartbeat
	pending  map[string]pending
	deferred bool
	ext      *extension // the block reservation in flight, if any

	deletes  *batch.Group[string, struct{}]
	tasks    sync.WaitGroup // block reservations running in the background
	sweeping atomic.Bool
}

type pending struct {
	seq       int64
	at        time.Time
	committed bool // its transaction returned; before, Sweep leaves it alone
	discarded bool // its commit failed a condition: Sweep deletes it unsent
}

// extension is one block reservation: done closes when it ends, with err.
type extension struct {
	done chan struct{}
	err  error
}

// errAdopted: another process adopted this owner (it looked dead).
var errAdopted = errors.New("outbox owner adopted by another process")

// callTimeout bounds the outbox's own sidecar calls, made for no caller.
const callTimeout = 10 * time.Second

// New returns an Outbox. It makes no sidecar call until the first Commit or
// Sweep; Close stops it.
func New(cfg Config) (*Outbox, error) {
	if cfg.Store == nil || cfg.Publisher == nil {
		return nil, errors.New("outbox: a state store and a publisher are required")
	}
	if cfg.Pubsub == "" || cfg.Topic == "" {
		return nil, errors.New("outbox: pubsub and topic are required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "outbox"
	}
	defaults := []struct {
		v *time.Duration
		d time.Duration
	}{{&cfg.RetryAfter, 5 * time.Second}, {&cfg.StaleAfter, time.Minute}, {&cfg.LateCommits, 10 * time.Minute},
		{&cfg.DeleteLinger, 100 * time.Millisecond}, {&cfg.DeliveryWait, time.Second}}
	for _, d := range defaults {
		if *d.v <= 0 {
			*d.v = d.d
		}
	}
	if cfg.Block <= 0 {
		cfg.Block = 1000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ob := &Outbox{cfg: cfg, log: log, owners: state.Index{Store: cfg.Store, Key: cfg.Prefix + "-owners"},
		owner: newOwner(), pending: map[string]pending{}}
	ob.deletes = batch.New(batch.Options{Max: 200, Linger: cfg.DeleteLinger}, ob.deleteBatch)
	return ob, nil
}

func newOwner() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (ob *Outbox) recordKey(owner string, seq int64) string {
	return ob.cfg.Prefix + "-" + owner + "-" + strconv.FormatInt(seq, 10)
}

func (ob *Outbox) heartbeatKey(owner string) string { return ob.cfg.Prefix + "-owner-" + owner }

// Owner returns this process's owner id.
func (ob *Outbox) Owner() string { ob.mu.Lock(); defer ob.mu.Unlock(); return ob.owner }

// Pending returns how many of this process's records are not yet known to
// be delivered and deleted.
func (ob *Outbox) Pending() int { ob.mu.Lock(); defer ob.mu.Unlock(); return len(ob.pending) }

// Deferred tells whether commits currently leave their events to Sweep
// (see Config.DeliveryWait).
func (ob *Outbox) Deferred() bool { ob.mu.Lock(); defer ob.mu.Unlock(); return ob.deferred }

// Commit applies ops and m's pending record in one transaction, then
// delivers m. It fails only when the transaction did: a delivery failure
// leaves the record to Sweep. A failed transaction may still have landed (a
// deadline says nothing either way): Sweep then finds the record and
// delivers it.
func (ob *Outbox) Commit(ctx context.Context, ops []bindings.StateOp, m Message) error {
	ev := m.Event
	if ev.Source == "" {
		ev.Source = ob.cfg.Source
	}
	data, err := json.Marshal(ev.Data)
	if err != nil {
		return fmt.Errorf("outbox: encode event %s: %w", ev.ID, err)
	}
	ev.Data = json.RawMessage(data)
	rec := record{ID: ev.ID, Source: ev.Source, Type: ev.Type, Subject: ev.Subject, Data: data, At: ob.cfg.Now().UTC()}
	if m.Attachment != nil {
		if rec.Attachment, err = json.Marshal(m.Attachment); err != nil {
			return fmt.Errorf("outbox: encode the attachment of %s: %w", ev.ID, err)
		}
	}
	key, err := ob.reserve(ctx)
	if err != nil {
		return err
	}
	raw, _ := json.Marshal(rec)
	err = ob.cfg.Store.Transact(ctx, append(slices.Clip(ops), bindings.StateOp{Key: key, Value: raw}))
	if errors.Is(err, bindings.ErrConflict) {
		// A condition of ops failed: the commit did not happen, though a
		// store without rollback (Redis) wrote the other ops, the record
		// among them. Its event must never go out.
		ob.discard(key)
		return fmt.Errorf("commit %s: %w", ev.ID, err)
	}
	ob.setCommitted(key)
	if err != nil {
		return fmt.Errorf("commit %s: %w", ev.ID, err)
	}
	if ob.Deferred() {
		return nil // Sweep delivers it
	}
	dctx, cancel := context.WithTimeout(ctx, ob.cfg.DeliveryWait)
	defer cancel()
	if err := ob.deliver(dctx, ev, rec.Attachment); err != nil {
		if dctx.Err() != nil && ctx.Err() == nil {
			ob.setDeferred(true, err)
		}
		ob.log.Warn("committed; delivering the event is left to the outbox sweep", "event", ev.ID, "error", err.Error())
		return nil
	}
	ob.deletes.Add(key)
	return nil
}

func (ob *Outbox) deliver(ctx context.Context, ev bindings.Event, attachment json.RawMessage) error {
	if err := ob.cfg.Publisher.Publish(ctx, ob.cfg.Pubsub, ob.cfg.Topic, ev); err != nil {
		return err
	}
	if ob.cfg.After != nil {
		return ob.cfg.After(ctx, ev, attachment)
	}
	return nil
}

func (ob *Outbox) setDeferred(on bool, cause error) {
	ob.mu.Lock()
	changed := ob.deferred != on
	ob.deferred = on
	ob.mu.Unlock()
	switch {
	case changed && on:
		ob.log.Warn("delivering an event took longer than the delivery wait: until the outbox sweep delivers again, commits do not wait for their events, which the sweep delivers",
			"wait", ob.cfg.DeliveryWait.String(), "error", cause.Error())
	case changed:
		ob.log.Info("events are delivered with their commits again")
	}
}

// reserve returns the key of the next record. When the block of sequence
// numbers runs low it asks for the next one in the background; a Commit
// waits only when the block is used up before the next one came.
func (ob *Outbox) reserve(ctx context.Context) (string, error) {
	for {
		ob.mu.Lock()
		if ob.next < ob.reserved {
			key := ob.recordKey(ob.owner, ob.next)
			ob.pending[key] = pending{seq: ob.next, at: ob.cfg.Now()}
			ob.next++
			if 2*(ob.reserved-ob.next) < ob.cfg.Block {
				ob.extendLocked() // ahead of need
			}
			ob.mu.Unlock()
			return key, nil
		}
		ext := ob.extendLocked()
		ob.mu.Unlock()
		select {
		case <-ext.done:
			if ext.err != nil {
				return "", ext.err
			}
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for outbox sequence numbers: %w", ctx.Err())
		}
	}
}

// extendLocked returns the block reservation in flight, starting one if
// none is.
func (ob *Outbox) extendLocked() *extension {
	if ob.ext != nil {
		return ob.ext
	}
	ext := &extension{done: make(chan struct{})}
	ob.ext = ext
	ob.tasks.Add(1)
	go func() {
		defer ob.tasks.Done()
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		ext.err = ob.extend(ctx)
		ob.mu.Lock()
		ob.ext = nil
		ob.mu.Unlock()
		close(ext.done)
	}()
	return ext
}

// extend reserves the next block in the owner's heartbeat, registering the
// owner first if it is new. An owner that was adopted gives way to a new
// one: its adopter delivers what it left.
func (ob *Outbox) extend(ctx context.Context) error {
	for range 2 {
		ob.mu.Lock()
		owner, registered := ob.owner, ob.reserved > 0
		low, want := ob.lowLocked(), max(ob.reserved, ob.next)+ob.cfg.Block
		ob.mu.Unlock()
		if !registered {
			if err := ob.register(ctx, owner); err != nil {
				return err
			}
		}
		hb, err := ob.beat(ctx, owner, low, want)
		ob.mu.Lock()
		switch {
		case ob.owner != owner: // replaced meanwhile
		case err == nil:
			ob.reserved = max(ob.reserved, hb.Reserved)
		case errors.Is(err, errAdopted):
			ob.log.Warn("outbox owner was adopted by another process; going on as a new owner", "old", owner)
			ob.owner, ob.next, ob.reserved, ob.pending = newOwner(), 0, 0, map[string]pending{}
			ob.mu.Unlock()
			continue
		}
		ob.mu.Unlock()
		if err != nil {
			return fmt.Errorf("reserve outbox sequence numbers: %w", err)
		}
		return nil
	}
	return errors.New("reserve outbox sequence numbers: adopted twice in a row")
}

// register writes a new owner's first heartbeat and lists it.
func (ob *Outbox) register(ctx context.Context, owner string) error {
	hb, _ := json.Marshal(heartbeat{Owner: owner, Beat: ob.cfg.Now().UTC()})
	if err := ob.cfg.Store.Save(ctx, ob.heartbeatKey(owner), hb, ""); err != nil && !errors.Is(err, bindings.ErrConflict) {
		return fmt.Errorf("register outbox owner %s: %w", owner, err)
	}
	if _, err := ob.owners.Add(ctx, owner); err != nil {
		return fmt.Errorf("list outbox owner %s: %w", owner, err)
	}
	ob.log.Info("outbox owner registered", "owner", owner)
	return nil
}

// beat writes owner's heartbeat: now, records from low, and at least
// reserved. It is errAdopted when another process adopted the owner.
func (ob *Outbox) beat(ctx context.Context, owner string, low, reserved int64) (heartbeat, error) {
	return state.Update(ctx, ob.cfg.Store, ob.heartbeatKey(owner), func(hb *heartbeat, found bool) error {
		if !found || hb.AdoptedBy != "" {
			return errAdopted
		}
		hb.Low, hb.Reserved, hb.Beat = low, max(hb.Reserved, reserved), ob.cfg.Now().UTC()
		return nil
	})
}

func (ob *Outbox) lowLocked() int64 {
	low := ob.next
	for _, p := range ob.pending {
		low = min(low, p.seq)
	}
	return low
}

func (ob *Outbox) setCommitted(key string) {
	ob.mu.Lock()
	if p, ok := ob.pending[key]; ok {
		p.committed = true
		ob.pending[key] = p
	}
	ob.mu.Unlock()
}

// discard deletes the record of a commit that failed; if that fails too,
// Sweep deletes it.
func (ob *Outbox) discard(key string) {
	ob.mu.Lock()
	ob.pending[key] = pending{seq: ob.pending[key].seq, at: ob.pending[key].at, committed: true, discarded: true}
	ob.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := ob.remove(ctx, []string{key}); err != nil {
		ob.log.Warn("deleting the record of a failed commit failed; the sweep will", "key", key, "error", err.Error())
	}
}

func (ob *Outbox) forget(keys ...string) {
	ob.mu.Lock()
	for _, k := range keys {
		delete(ob.pending, k)
	}
	ob.mu.Unlock()
}

// deleteBatch deletes delivered records in one transaction. If it fails,
// the records stay pending: Sweep delivers them again (consumers
// deduplicate) and deletes them then.
func (ob *Outbox) deleteBatch(calls []*batch.Call[string, struct{}]) {
	keys := make([]string, len(calls))
	for i, c := range calls {
		keys[i] = c.In
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := ob.remove(ctx, keys); err != nil {
		ob.log.Warn("deleting delivered outbox records failed; the sweep will", "records", len(keys), "error", err.Error())
	}
	for _, c := range calls {
		c.Answer(struct{}{}, nil)
	}
}

// remove deletes records and forgets them.
func (ob *Outbox) remove(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	ops := make([]bindings.StateOp, len(keys))
	for i, k := range keys {
		ops[i] = bindings.StateOp{Key: k, Delete: true}
	}
	if err := ob.cfg.Store.Transact(ctx, ops); err != nil {
		return err
	}
	ob.forget(keys...)
	return nil
}

// Close deletes the delivered records still queued and waits for the
// outbox's background work.
func (ob *Outbox) Close() {
	ob.deletes.Close()
	ob.tasks.Wait()
}
