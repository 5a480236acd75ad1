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

func TestPublisherConformance(t *testing.T) {
	received := make(chan conformance.Received, 8)
	p := &memory.Publisher{Deliver: func(_ context.Context, pub memory.Published) error {
		meta, data, err := runtime.DecodeCloudEvent(pub.CloudEvent, runtime.ContentTypeCloudEvent)
		if err != nil {
			return err
		}
		meta.Pubsub, meta.Topic = pub.Pubsub, pub.Topic
		received <- conformance.Received{EventMeta: *meta, Data: json.RawMessage(data)}
		return nil
	}}
	conformance.Publisher(t, p, "pubsub", "orders", received)
}
