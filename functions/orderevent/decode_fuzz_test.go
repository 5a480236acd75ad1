package orderevent

import (
	"context"
	"testing"

	"github.com/daprfn/shop/runtime"
)

// FuzzLookupRequest runs POST /orders/lookup bodies through the runtime's
// decoding and validation: what reaches the function is 1 to MaxLookup
// safe ids, and everything else is a 4xx.
func FuzzLookupRequest(f *testing.F) {
	f.Add([]byte(`{"ids":["order-1","order-2"]}`))
	f.Add([]byte(`{"ids":[]}`))
	f.Add([]byte(`{"ids":["../x"]}`))
	f.Add([]byte(`{"ids":"order-1"}`))
	app := runtime.New(runtime.Options{})
	var got *LookupRequest
	runtime.Invoke(app, "POST /orders/lookup", func(_ context.Context, in LookupRequest) (LookupResponse, error) {
		got = &in
		return LookupResponse{}, nil
	})
	f.Fuzz(func(t *testing.T, body []byte) {
		got = nil
		r := app.Dispatch(context.Background(), &runtime.Message{Kind: runtime.KindInvoke, Method: "POST", Path: "orders/lookup", ContentType: "application/json", Body: body})
		if r.Err != nil {
			if s := runtime.Classify(r.Err).Status; s < 400 || s > 499 {
				t.Fatalf("bad input must be a 4xx, got %d: %v", s, r.Err)
			}
			return
		}
		if got == nil || len(got.IDs) == 0 || len(got.IDs) > MaxLookup {
			t.Fatalf("no error, and %v reached the function", got)
		}
		for _, id := range got.IDs {
			if !runtime.SafeID(id) {
				t.Fatalf("unsafe id reached the function: %q", id)
			}
		}
	})
}
