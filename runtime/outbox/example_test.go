package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/bindings/memory"
	"github.com/daprfn/shop/runtime/outbox"
)

// A shipping function stores a shipment and announces it as one step.
func Example() {
	ctx := context.Background()
	store, pub := memory.NewStore(), &memory.Publisher{} // in a function: the sidecar
	events, err := outbox.New(outbox.Config{Store: store, Publisher: pub, Pubsub: "pubsub", Topic: "shipments", Source: "shipping"})
	if err != nil {
		panic(err)
	}
	defer events.Close()

	shipment := map[string]any{"id": "shipment-1", "order": "order-7"}
	raw, _ := json.Marshal(shipment)
	err = events.Commit(ctx, []bindings.StateOp{{Key: "shipment-1", Value: raw}},
		outbox.Message{Event: bindings.Event{ID: "shipment-1", Type: "com.example.shipment.created", Data: shipment}})
	fmt.Println(err)
	for _, p := range pub.Published() {
		fmt.Println(p.Topic, p.Event.ID, p.Event.Source)
	}
	// Output:
	// <nil>
	// shipments shipment-1 shipping
}
