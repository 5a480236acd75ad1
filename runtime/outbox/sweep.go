package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/daprfn/shop/runtime"
	"github.com/daprfn/shop/runtime/state"
)

// Sweep is the outbox's cron step (register it with runtime.Binding on a
// cron input binding): it delivers this process's records older than
// RetryAfter, beats its heartbeat, and adopts the records of owners whose
// heartbeat is older than StaleAfter. A sweep that starts while another
// runs does nothing; one that fails asks to be run again.
func (ob *Outbox) Sweep(ctx context.Context, _ runtime.BindingEvent[struct{}]) error {
	if !ob.sweeping.CompareAndSwap(false, true) {
		ob.log.Debug("outbox sweep skipped: the previous one still runs")
		return nil
	}
	defer ob.sweeping.Store(false)
	var errs []error
	if err := ob.sweepOwn(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := ob.beatOwn(ctx); err != nil {
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
	var keys, discarded []string
	cutoff := ob.cfg.Now().Add(-ob.cfg.RetryAfter)
	for k, p := range ob.pending {
		switch {
		case p.discarded:
			discarded = append(discarded, k)
		case p.committed && p.at.Before(cutoff):
			// An uncommitted record may still be on its way into the store;
			// only its Commit may forget it.
			keys = append(keys, k)
		}
	}
	ob.mu.Unlock()
	if err := ob.remove(ctx, discarded); err != nil {
		return fmt.Errorf("delete the records of failed commits: %w", err)
	}
	slices.Sort(keys)
	if _, err := ob.redeliver(ctx, keys); err != nil {
		return err
	}
	// Every record due was delivered (or none was due): commits may wait for
	// their events again. If the broker is still slow, the next commit waits
	// DeliveryWait once and defers again.
	ob.setDeferred(false, nil)
	return nil
}

// beatOwn writes the heartbeat of a registered owner. If it was adopted,
// the process goes on as a new owner: its adopter delivers what the old
// one left.
func (ob *Outbox) beatOwn(ctx context.Context) error {
	ob.mu.Lock()
	owner, reserved, low := ob.owner, ob.reserved, ob.lowLocked()
	ob.mu.Unlock()
	if reserved == 0 {
		return nil // not registered yet
	}
	_, err := ob.beat(ctx, owner, low, reserved)
	if errors.Is(err, errAdopted) {
		ob.mu.Lock()
		if ob.owner == owner {
			ob.log.Warn("outbox owner was adopted by another process; going on as a new owner", "old", owner)
			ob.owner, ob.next, ob.reserved, ob.pending = newOwner(), 0, 0, map[string]pending{}
		}
		ob.mu.Unlock()
		return nil
	}
	return err
}

// redeliver delivers and deletes every record found under keys and forgets
// the keys with none. It returns how many it delivered.
func (ob *Outbox) redeliver(ctx context.Context, keys []string) (int, error) {
	delivered := 0
	for chunk := range slices.Chunk(keys, 100) {
		items, err := ob.cfg.Store.BulkGet(ctx, chunk)
		if err != nil {
			return delivered, fmt.Errorf("read outbox records: %w", err)
		}
		var done []string
		for _, it := range items {
			if !it.Found {
				ob.forget(it.Key) // never committed, or deleted already
				continue
			}
			var rec record
			if err := json.Unmarshal(it.Value, &rec); err != nil || rec.ID == "" {
				ob.log.Error("unreadable outbox record left in place", "key", it.Key)
				continue
			}
			if err = ob.deliver(ctx, rec.event(), rec.Attachment); err == nil {
				done = append(done, it.Key)
				continue
			}
			if rerr := ob.remove(ctx, done); rerr != nil {
				err = errors.Join(err, rerr)
			}
			return delivered, fmt.Errorf("redeliver %s: %w", rec.ID, err)
		}
		if err := ob.remove(ctx, done); err != nil {
			return delivered, fmt.Errorf("delete delivered outbox records: %w", err)
		}
		delivered += len(done)
	}
	if delivered > 0 {
		ob.log.Info("outbox sweep delivered pending events", "events", delivered)
	}
	return delivered, nil
}

func (ob *Outbox) adoptStale(ctx context.Context) error {
	owners, err := ob.owners.List(ctx)
	if err != nil {
		return fmt.Errorf("list outbox owners: %w", err)
	}
	me := ob.Owner()
	var errs []error
	for _, owner := range owners {
		if owner == me {
			continue
		}
		if err := ob.adopt(ctx, owner); err != nil {
			errs = append(errs, err) // the others are still adopted
		}
	}
	return errors.Join(errs...)
}

// adopt delivers the records an owner left if its heartbeat is stale. It
// retires the owner once LateCommits has passed since its first adoption;
// until then each adoption (one per StaleAfter) delivers the records that
// landed late.
func (ob *Outbox) adopt(ctx context.Context, owner string) error {
	claimed := false
	now := ob.cfg.Now()
	hb, err := state.Update(ctx, ob.cfg.Store, ob.heartbeatKey(owner), func(hb *heartbeat, found bool) error {
		claimed = false
		if !found || now.Sub(hb.Beat) < ob.cfg.StaleAfter {
			return state.ErrUnchanged // retired, or alive (or being adopted right now)
		}
		if hb.AdoptedAt.IsZero() {
			hb.AdoptedAt = now.UTC()
		}
		hb.AdoptedBy, hb.Beat, claimed = ob.Owner(), now.UTC(), true
		return nil
	})
	if err != nil {
		return fmt.Errorf("claim outbox owner %s: %w", owner, err)
	}
	if claimed {
		keys := make([]string, 0, max(hb.Reserved-hb.Low, 0))
		for seq := hb.Low; seq < hb.Reserved; seq++ {
			keys = append(keys, ob.recordKey(owner, seq))
		}
		n, err := ob.redeliver(ctx, keys)
		if err != nil {
			return fmt.Errorf("adopt outbox owner %s: %w", owner, err)
		}
		switch {
		case hb.AdoptedAt.Equal(now.UTC()):
			ob.log.Info("adopted a silent outbox owner", "owner", owner, "delivered", n)
		case n > 0:
			ob.log.Warn("delivered events whose commits reached an adopted outbox owner's records late", "owner", owner, "delivered", n)
		}
		if now.Sub(hb.AdoptedAt) < ob.cfg.LateCommits {
			return nil // its late commits may still land
		}
	} else if hb.Owner != "" {
		return nil // alive
	}
	// Retire it: its heartbeat first, so a listed owner without one is one
	// whose retirement did not finish, and the next sweep finishes it.
	if err := ob.cfg.Store.Delete(ctx, ob.heartbeatKey(owner), ""); err != nil {
		return fmt.Errorf("retire outbox owner %s: %w", owner, err)
	}
	return ob.owners.Remove(ctx, owner)
}
