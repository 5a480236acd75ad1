package memory_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/daprfn/shop/bindings/conformance"
	"github.com/daprfn/shop/bindings/memory"
	"github.com/daprfn/shop/runtime"
)

func TestStoreConformance(t *testing.T) { conformance.StateStore(t, memory.NewStore()) }

func TestUpdateConformance(t *testing.T) { conformance.Update(t, memory.NewStore()) }

// delivering is a Publisher that hands each event, decoded as a subscriber
// sees it, to the returned channel.
func delivering() (*memory.Publisher, chan conformance.Received) {
	received := make(chan conformance.Received, 8)
	return &memory.Publisher{Deliver: func(_ context.Context, pub memory.Published) error {
		meta, data, err := runtime.DecodeCloudEvent(pub.CloudEvent, runtime.ContentTypeCloudEvent)
		if err != nil {
			return err
		}
		meta.Pubsub, meta.Topic = pub.Pubsub, pub.Topic
		received <- conformance.Received{EventMeta: *meta, Data: json.RawMessage(data)}
		return nil
	}}, received
}

func TestPublisherConformance(t *testing.T) {
	p, received := delivering()
	conformance.Publisher(t, p, "pubsub", "orders", received)
}

func TestOutboxConformance(t *testing.T) {
	p, received := delivering()
	conformance.Outbox(t, memory.NewStore(), p, "pubsub", "orders", received)
}
