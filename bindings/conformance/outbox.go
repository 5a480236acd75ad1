package conformance

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/runtime"
	"github.com/daprfn/shop/runtime/outbox"
)

// failOnce fails the first Publish it is told to, then publishes.
type failOnce struct {
	bindings.Publisher
	fail atomic.Bool
}

func (f *failOnce) Publish(ctx context.Context, pubsub, topic string, ev bindings.Event) error {
	if f.fail.CompareAndSwap(true, false) {
		return errors.New("broker down (on purpose)")
	}
	return f.Publisher.Publish(ctx, pubsub, topic, ev)
}

// Outbox runs the outbox suite over s and p: a commit writes its keys and
// its event reaches received, an event whose publish failed is delivered by
// the sweep, and a commit whose transaction fails publishes nothing.
func Outbox(t *testing.T, s bindings.StateStore, p bindings.Publisher, pubsub, topic string, received <-chan Received) {
	prefix := fmt.Sprintf("conf-outbox-%d", rand.Int64())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	pub := &failOnce{Publisher: p}
	ob, err := outbox.New(outbox.Config{Store: s, Publisher: pub, Pubsub: pubsub, Topic: topic, Source: "conformance",
		Prefix: prefix, RetryAfter: time.Millisecond, DeleteLinger: time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(ob.Close)
	seen := map[string]bool{}
	wait := func(t *testing.T, id string) Received {
		t.Helper()
		for {
			select {
			case got := <-received:
				seen[got.ID] = true
				if got.ID == id {
					return got
				}
			case <-ctx.Done():
				t.Fatalf("event %s not received within the deadline", id)
			}
		}
	}
	event := func(id string) outbox.Message {
		return outbox.Message{Event: bindings.Event{ID: id, Type: "com.example.committed", Data: map[string]string{"id": id}}}
	}

	t.Run("a commit writes its keys and delivers its event", func(t *testing.T) {
		id := prefix + "-a"
		require.NoError(t, ob.Commit(ctx, []bindings.StateOp{{Key: id, Value: []byte(`{"a":1}`)}}, event(id)))
		it, err := s.Get(ctx, id)
		require.NoError(t, err)
		assert.JSONEq(t, `{"a":1}`, string(it.Value))
		got := wait(t, id)
		assert.Equal(t, "conformance", got.Source)
		assert.JSONEq(t, fmt.Sprintf(`{"id":%q}`, id), string(got.Data))
		require.Eventually(t, func() bool { return ob.Pending() == 0 }, 10*time.Second, 10*time.Millisecond, "the delivered record is deleted")
		rec, err := s.Get(ctx, prefix+"-"+ob.Owner()+"-0")
		require.NoError(t, err)
		assert.False(t, rec.Found)
	})

	t.Run("an event whose publish failed is delivered by the sweep", func(t *testing.T) {
		id := prefix + "-b"
		pub.fail.Store(true)
		require.NoError(t, ob.Commit(ctx, nil, event(id)), "committed; the event is left to the sweep")
		require.Equal(t, 1, ob.Pending())
		time.Sleep(5 * time.Millisecond) // past RetryAfter
		require.NoError(t, ob.Sweep(ctx, runtime.BindingEvent[struct{}]{}))
		wait(t, id)
		assert.Zero(t, ob.Pending())
	})

	t.Run("a commit whose condition fails publishes nothing", func(t *testing.T) {
		// Whether its other writes were applied depends on the store (see
		// bindings.StateStore.Transact); its event must never go out.
		taken := prefix + "-taken"
		require.NoError(t, s.Save(ctx, taken, []byte(`{}`), ""))
		id := prefix + "-c"
		err := ob.Commit(ctx, []bindings.StateOp{{Key: id, Value: []byte(`{}`)}, {Key: taken, Value: []byte(`{"again":true}`)}}, event(id))
		require.ErrorIs(t, err, bindings.ErrConflict)
		time.Sleep(5 * time.Millisecond)
		require.NoError(t, ob.Sweep(ctx, runtime.BindingEvent[struct{}]{}))
		assert.Zero(t, ob.Pending(), "the failed commit's record is gone")
		next := prefix + "-d"
		require.NoError(t, ob.Commit(ctx, nil, event(next)))
		wait(t, next)
		assert.False(t, seen[id], "the failed commit's event was never published")
	})
}
