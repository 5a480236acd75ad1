package runtime_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/daprfn/shop/runtime"
)

type CheckRequest struct {
	ProductID string `json:"productId"`
	Quantity  int    `json:"quantity"`
}

type CheckResponse struct {
	Available bool `json:"available"`
}

func nilLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// A function is plain Go; the App adapts it to a trigger and decodes and
// encodes JSON once at the edge.
func Example() {
	check := func(_ context.Context, in CheckRequest) (CheckResponse, error) {
		if in.ProductID != "product-1" {
			return CheckResponse{}, runtime.NotFound("product_not_found", "Product not found")
		}
		return CheckResponse{Available: in.Quantity <= 10}, nil
	}
	app := runtime.New(runtime.Options{Logger: nilLogger()})
	runtime.Invoke(app, "POST /check", check)

	for _, body := range []string{`{"productId":"product-1","quantity":2}`, `{"productId":"product-9","quantity":2}`, `{"quantity":`} {
		r := app.Dispatch(context.Background(), &runtime.Message{Kind: runtime.KindInvoke, Method: "POST", Path: "check", ContentType: "application/json", Body: []byte(body)})
		if e := runtime.Classify(r.Err); e != nil {
			fmt.Println(e.Status, string(e.ErrorJSON()))
			continue
		}
		fmt.Println(200, string(r.Body))
	}
	// Output:
	// 200 {"available":true}
	// 404 {"error":"Product not found","code":"product_not_found"}
	// 400 {"error":"malformed JSON at byte 12: unexpected end of JSON input","code":"invalid_json"}
}

// Topic functions receive the decoded data and the CloudEvent's attributes;
// their error decides SUCCESS, RETRY or DROP.
func ExampleTopic() {
	type OrderEvent struct {
		OrderID string `json:"orderId"`
	}
	app := runtime.New(runtime.Options{})
	runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "orders", Route: "/orders", DeadLetterTopic: "orders-deadletter"},
		func(_ context.Context, ev runtime.Event[OrderEvent]) error {
			if strings.TrimSpace(ev.Data.OrderID) == "" {
				return runtime.Invalid("no_order_id", "event %s has no orderId", ev.ID) // DROP: to the dead-letter topic
			}
			fmt.Println("notify", ev.Data.OrderID, "from event", ev.ID)
			return nil
		})
	meta := &runtime.EventMeta{ID: "e-1", Pubsub: "pubsub", Topic: "orders"}
	for _, data := range []string{`{"orderId":"order-1"}`, `{}`} {
		r := app.Dispatch(context.Background(), &runtime.Message{Kind: runtime.KindTopic, Event: meta, Body: []byte(data)})
		if e := runtime.Classify(r.Err); e != nil {
			fmt.Println(e.Outcome)
		}
	}
	// Output:
	// notify order-1 from event e-1
	// DROP
}
