package order

import (
	"context"
	"net/mail"
	"testing"

	"github.com/daprfn/shop/runtime"
)

// FuzzCreateRequest runs POST /orders bodies through the runtime's decoding,
// binding and validation: whatever reaches the function is a valid order
// request, and everything else is a 4xx.
func FuzzCreateRequest(f *testing.F) {
	for _, s := range []string{
		`{"productId":"product-1","quantity":2,"customerEmail":"customer@example.com"}`,
		`{"productId":"product-1","quantity":2.5,"customerEmail":"a@example.com"}`,
		`{"productId":"","quantity":-1,"customerEmail":"a"}`,
		`{"productId":"p","quantity":1,"quantity":2,"customerEmail":"a@example.com"}`,
		`{"productId":"p","quantity":1e3,"customerEmail":"Bob <b@example.com>"}`,
	} {
		f.Add([]byte(s), "")
	}
	f.Add([]byte(`{"productId":"p","quantity":1,"customerEmail":"a@example.com"}`), "key-1")
	app := runtime.New(runtime.Options{})
	var got *CreateRequest
	runtime.Invoke(app, "POST /orders", func(_ context.Context, in CreateRequest) (CreateResponse, error) {
		got = &in
		return CreateResponse{}, nil
	})
	f.Fuzz(func(t *testing.T, body []byte, key string) {
		got = nil
		m := &runtime.Message{Kind: runtime.KindInvoke, Method: "POST", Path: "orders", ContentType: "application/json", Body: body,
			Metadata: map[string]string{"idempotency-key": key}}
		r := app.Dispatch(context.Background(), m)
		if r.Err != nil {
			if s := runtime.Classify(r.Err).Status; s < 400 || s > 499 {
				t.Fatalf("bad input must be a 4xx, got %d: %v", s, r.Err)
			}
			return
		}
		if got == nil {
			t.Fatal("no error and no call")
		}
		if got.Quantity < 1 || got.Quantity > MaxQuantity || got.ProductID == "" || len(got.ProductID) > 100 {
			t.Fatalf("invalid request reached the function: %+v", *got)
		}
		if a, err := mail.ParseAddress(got.CustomerEmail); err != nil || a.Address != got.CustomerEmail {
			t.Fatalf("invalid email reached the function: %q", got.CustomerEmail)
		}
	})
}
