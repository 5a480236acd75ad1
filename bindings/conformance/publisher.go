package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/runtime"
)

// Received is an event as a subscriber saw it.
type Received = runtime.Event[json.RawMessage]

// Publisher runs the publisher suite: events published through p to
// pubsub/topic must reach received with id, source, type, data and the
// publisher's traceparent intact.
func Publisher(t *testing.T, p bindings.Publisher, pubsub, topic string, received <-chan Received) {
	traceparent := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx := runtime.WithTraceContext(context.Background(), runtime.TraceContext{TraceParent: traceparent})
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	t.Cleanup(cancel)

	id := fmt.Sprintf("conf-event-%d", rand.Int64())
	ev := bindings.Event{ID: id, Source: "conformance", Type: "com.example.test", Data: map[string]any{"orderId": id, "quantity": 2}}
	require.NoError(t, p.Publish(ctx, pubsub, topic, ev))

	for {
		select {
		case got := <-received:
			if got.ID != id {
				continue // an earlier run's leftover
			}
			assert.Equal(t, "conformance", got.Source)
			assert.Equal(t, "com.example.test", got.Type)
			assert.Equal(t, topic, got.Topic)
			assert.Equal(t, pubsub, got.Pubsub)
			assert.JSONEq(t, fmt.Sprintf(`{"orderId":%q,"quantity":2}`, id), string(got.Data))
			// daprd continues the trace: same trace id, its own span id.
			require.GreaterOrEqual(t, len(got.TraceParent), 35, "traceparent %q", got.TraceParent)
			assert.Equal(t, traceparent[:35], got.TraceParent[:35], "trace id must survive publishing")
			return
		case <-ctx.Done():
			t.Fatalf("event %s not received within the deadline", id)
		}
	}
}

// BulkPublisher runs the bulk publisher suite: the events of one PublishBulk
// to pubsub/topic must each reach received once, with their own id, data and
// trace (not the call's), and be answered as published.
func BulkPublisher(t *testing.T, p bindings.BulkPublisher, pubsub, topic string, received <-chan Received) {
	callTrace := "00-11111111111111111111111111111111-00f067aa0ba902b7-01"
	ctx := runtime.WithTraceContext(context.Background(), runtime.TraceContext{TraceParent: callTrace})
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	t.Cleanup(cancel)

	run := rand.Int64()
	want := map[string]string{} // id -> trace id
	evs := make([]bindings.Event, 3)
	for i := range evs {
		id := fmt.Sprintf("conf-bulk-%d-%d", run, i)
		trace := fmt.Sprintf("00-%032x-00f067aa0ba902b7-01", run+int64(i)+2)
		want[id] = trace[:35]
		evs[i] = bindings.Event{ID: id, Source: "conformance", Type: "com.example.bulk", Data: map[string]any{"orderId": id, "n": i},
			Trace: runtime.TraceContext{TraceParent: trace}}
	}
	errs := p.PublishBulk(ctx, pubsub, topic, evs)
	require.Len(t, errs, len(evs))
	for i, err := range errs {
		require.NoError(t, err, "event %d", i)
	}

	for len(want) > 0 {
		select {
		case got := <-received:
			trace, ok := want[got.ID]
			if !ok {
				continue // an earlier run's leftover or another suite's event
			}
			delete(want, got.ID)
			assert.Equal(t, "conformance", got.Source)
			assert.Equal(t, "com.example.bulk", got.Type)
			assert.Equal(t, topic, got.Topic)
			assert.Contains(t, string(got.Data), got.ID)
			require.GreaterOrEqual(t, len(got.TraceParent), 35, "traceparent %q", got.TraceParent)
			assert.Equal(t, trace, got.TraceParent[:35], "each event keeps its own trace, not the call's")
		case <-ctx.Done():
			t.Fatalf("events %v not received within the deadline", want)
		}
	}
}
