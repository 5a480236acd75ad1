package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/daprfn/shop/bindings"
)

// ErrUnchanged, returned by a change function, ends an update without a
// write; the update then returns the value as read and no error.
var ErrUnchanged = errors.New("state: nothing to write")

// ErrContended is returned (wrapped) when every attempt of an update lost
// to another writer.
var ErrContended = errors.New("state: too many conflicting writers")

// Backoff is how an update waits between attempts: a random wait of about
// Base·2^attempt, at most Max, for at most Attempts attempts in all.
type Backoff struct {
	Base     time.Duration // default 1 ms
	Max      time.Duration // default 50 ms
	Attempts int           // default 20
}

// DefaultBackoff is the Backoff of updates given none.
var DefaultBackoff = Backoff{Base: time.Millisecond, Max: 50 * time.Millisecond, Attempts: 20}

func (b Backoff) orDefault() Backoff {
	if b.Base <= 0 {
		b.Base = DefaultBackoff.Base
	}
	if b.Max <= 0 {
		b.Max = DefaultBackoff.Max
	}
	if b.Attempts <= 0 {
		b.Attempts = DefaultBackoff.Attempts
	}
	return b
}

// Wait sleeps before attempt number attempt+1 (attempt counts from 0): half
// to one and a half times Base·2^attempt, capped at Max, or until ctx ends,
// when it returns ctx's error.
func (b Backoff) Wait(ctx context.Context, attempt int) error {
	b = b.orDefault()
	d := min(b.Base<<min(attempt, 20), b.Max)
	d = d/2 + rand.N(d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Option tunes one update.
type Option func(*Backoff)

// WithBackoff sets the update's backoff.
func WithBackoff(b Backoff) Option { return func(o *Backoff) { *o = b } }

// Update changes the JSON value under key with compare-and-swap. change gets
// the stored value (the zero T and found false when there is none) and
// changes it in place, or returns ErrUnchanged to write nothing, or another
// error to stop the update with it. The value is written only if the key
// did not change since it was read; otherwise it is read again, after a
// backoff, and change runs again on the fresh value. Update returns the
// value as written (or as read, when unchanged).
func Update[T any](ctx context.Context, store bindings.StateStore, key string, change func(v *T, found bool) error, opts ...Option) (T, error) {
	b := DefaultBackoff
	for _, o := range opts {
		o(&b)
	}
	b = b.orDefault()
	var zero T
	for attempt := range b.Attempts {
		if attempt > 0 {
			if err := b.Wait(ctx, attempt-1); err != nil {
				return zero, fmt.Errorf("update %s: %w", key, err)
			}
		}
		it, err := store.Get(ctx, key)
		if err != nil {
			return zero, fmt.Errorf("read %s: %w", key, err)
		}
		var v T
		if it.Found {
			if err := json.Unmarshal(it.Value, &v); err != nil {
				return zero, fmt.Errorf("stored %s is corrupt: %w", key, err)
			}
		}
		err = change(&v, it.Found)
		if errors.Is(err, ErrUnchanged) {
			return v, nil
		}
		if err != nil {
			return zero, err
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return zero, fmt.Errorf("encode %s: %w", key, err)
		}
		// ETag "" creates: of two writers that both found no value, one wins.
		err = store.Save(ctx, key, raw, it.ETag)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, bindings.ErrConflict) {
			return zero, fmt.Errorf("write %s: %w", key, err)
		}
	}
	return zero, fmt.Errorf("update %s: %w (%d attempts)", key, ErrContended, b.Attempts)
}
