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
