package notification

import (
	"context"
	"strings"
	"testing"

	"github.com/daprfn/shop/runtime"
)

// FuzzOrderEvent runs order event data through the runtime's topic decoding
// and validation: an event that reaches Send has an order id that is safe as
// a file name and a recipient; everything else is dropped.
func FuzzOrderEvent(f *testing.F) {
	for _, s := range []string{
		`{"orderId":"order-1","customerEmail":"a@example.com","productId":"product-1","quantity":2}`,
		`"{\"orderId\":\"order-1\",\"customerEmail\":\"a@example.com\"}"`,
		`{"orderId":"../../etc/passwd","customerEmail":"a@example.com"}`,
		`{"orderId":"order-1","orderId":"order-2","customerEmail":"a@example.com"}`,
		`{"orderId":"o","quantity":"many"}`,
	} {
		f.Add([]byte(s))
	}
	app := runtime.New(runtime.Options{})
	var got *OrderEvent
	runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "orders", Route: "/orders"}, func(_ context.Context, ev runtime.Event[OrderEvent]) error {
		got = &ev.Data
		return nil
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		got = nil
		m := &runtime.Message{Kind: runtime.KindTopic, Name: "pubsub/orders", Path: "/orders", Body: data, Event: &runtime.EventMeta{ID: "e", Topic: "orders", Pubsub: "pubsub"}}
		r := app.Dispatch(context.Background(), m)
		if r.Err != nil {
			if o := runtime.Classify(r.Err).Outcome; o != runtime.Drop {
				t.Fatalf("undecodable or invalid data must be dropped, got %v: %v", o, r.Err)
			}
			return
		}
		if got == nil {
			t.Fatal("no error and no call")
		}
		if !runtime.SafeID(got.OrderID) || !strings.Contains(got.CustomerEmail, "@") {
			t.Fatalf("invalid event reached Send: %+v", *got)
		}
	})
}
