package notification

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/runtime"
	"github.com/daprfn/shop/runtime/state"
)

// UnsentKey is the state key under which an order event is kept that could
// not be sent even from the dead-letter topic.
func UnsentKey(orderID string) string { return "unsent-" + orderID }

// unsentIndexKey lists the kept events' order ids: Dapr's state API cannot
// list keys.
const unsentIndexKey = "unsent-index"

func (s *Service) unsent() state.Index { return state.Index{Store: s.store, Key: unsentIndexKey} }

type unsentRecord struct {
	EventID string     `json:"eventId"`
	Order   OrderEvent `json:"order"`
	KeptAt  time.Time  `json:"keptAt"`
	// ClaimedBy is the replica whose sweep is sending it, since ClaimedAt:
	// every replica's email-sweep fires, and over SMTP two that sent the
	// same kept event would send it twice.
	ClaimedBy string    `json:"claimedBy,omitempty"`
	ClaimedAt time.Time `json:"claimedAt,omitzero"`
}

// claimFor is how long a replica's claim on a kept event holds off the
// others; a replica that died while sending is taken over after it.
const claimFor = 5 * time.Minute

// keep stores o's event, then lists it for SendUnsent. Keeping an event
// that is kept already changes nothing.
func (s *Service) keep(ctx context.Context, eventID string, o OrderEvent) error {
	rec, _ := json.Marshal(unsentRecord{EventID: eventID, Order: o, KeptAt: time.Now().UTC()})
	if err := s.store.Transact(ctx, []bindings.StateOp{{Key: UnsentKey(o.OrderID), Value: rec}}); err != nil && !errors.Is(err, bindings.ErrConflict) {
		return fmt.Errorf("keep unsent order event %s: %w", o.OrderID, err)
	}
	if _, err := s.unsent().Add(ctx, o.OrderID); err != nil {
		return fmt.Errorf("list unsent order event %s: %w", o.OrderID, err)
	}
	return nil
}

// SendUnsent is the email sweep's cron step: it sends the kept events in the
// order they were kept and forgets each one sent. It stops at the first that
// still fails (the sink is still down) and asks to be run again.
func (s *Service) SendUnsent(ctx context.Context, _ runtime.BindingEvent[struct{}]) error {
	if !s.sweeping.TryLock() {
		return nil // the previous sweep still runs
	}
	defer s.sweeping.Unlock()
	kept, err := s.unsent().List(ctx)
	if err != nil || len(kept) == 0 {
		return err
	}
	var done []string
	sent := 0
	flush := func() error { // forget in chunks: one transaction per 100
		if len(done) == 0 {
			return nil
		}
		if err := s.forget(ctx, done); err != nil {
			return runtime.RetryLater(err) // sent; the next sweep finds them sent and forgets them then
		}
		sent += len(done)
		done = done[:0]
		return nil
	}
	var sendErr error
	for _, id := range kept {
		it, err := s.store.Get(ctx, UnsentKey(id))
		if err != nil {
			sendErr = fmt.Errorf("read %s: %w", UnsentKey(id), err)
			break
		}
		var rec unsentRecord
		if it.Found {
			if err := json.Unmarshal(it.Value, &rec); err != nil {
				s.log.Error("corrupt unsent order event left in place", "key", UnsentKey(id), "error", err.Error())
				continue
			}
			claimed, err := s.claim(ctx, it, rec)
			if err != nil {
				sendErr = err
				break
			}
			if !claimed {
				continue // another replica's sweep is sending it
			}
			if err := s.Send(ctx, runtime.Event[OrderEvent]{EventMeta: runtime.EventMeta{ID: rec.EventID}, Data: rec.Order}); err != nil {
				sendErr = err
				break
			}
		}
		done = append(done, id)
		if len(done) == 100 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if sent > 0 {
		s.log.Info("kept order confirmations sent", "orders", sent, "left", len(kept)-sent)
	}
	if sendErr != nil {
		return runtime.RetryLater(fmt.Errorf("%d kept order confirmations still unsent: %w", len(kept)-sent, sendErr))
	}
	return nil
}

// claim marks the kept event it (decoded as rec) as being sent by this
// replica, unless another one claimed it less than claimFor ago or claims
// it first.
func (s *Service) claim(ctx context.Context, it bindings.StateItem, rec unsentRecord) (bool, error) {
	if rec.ClaimedBy != "" && rec.ClaimedBy != s.replica && time.Since(rec.ClaimedAt) < claimFor {
		return false, nil
	}
	rec.ClaimedBy, rec.ClaimedAt = s.replica, time.Now().UTC()
	b, _ := json.Marshal(rec)
	switch err := s.store.Save(ctx, it.Key, b, it.ETag); {
	case errors.Is(err, bindings.ErrConflict):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("claim %s: %w", it.Key, err)
	}
	return true, nil
}

// forget deletes the records of ids, then takes them off the index.
func (s *Service) forget(ctx context.Context, ids []string) error {
	ops := make([]bindings.StateOp, len(ids))
	for i, id := range ids {
		ops[i] = bindings.StateOp{Key: UnsentKey(id), Delete: true}
	}
	if err := s.store.Transact(ctx, ops); err != nil {
		return fmt.Errorf("forget sent order events: %w", err)
	}
	if err := s.unsent().Remove(ctx, ids...); err != nil {
		return fmt.Errorf("forget sent order events: %w", err)
	}
	return nil
}
