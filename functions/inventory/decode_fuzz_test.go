package inventory

import (
	"context"
	"testing"

	"github.com/daprfn/shop/functions/lease"
	"github.com/daprfn/shop/functions/stock"
	"github.com/daprfn/shop/runtime"
)

func FuzzParseCatalog(f *testing.F) {
	for _, s := range []string{"product-1:Laptop:10,product-2:Mouse:50", "p:x", "p:x:-1", ":::", "a:b:99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		items, err := ParseCatalog(s)
		if err != nil {
			return
		}
		if len(items) == 0 {
			t.Fatal("an accepted catalog has products")
		}
		for _, it := range items {
			if it.Stock < 0 {
				t.Fatalf("negative stock accepted: %+v", it)
			}
		}
	})
}

// FuzzInventoryRequests runs /check, /reserve, /confirm and /lease bodies through
// the runtime's decoding and validation.
func FuzzInventoryRequests(f *testing.F) {
	f.Add("check", []byte(`{"productId":"product-1","quantity":2,"orderId":"order-1"}`))
	f.Add("confirm", []byte(`{"orders":[{"orderId":"../x","productId":"product-1"}]}`))
	f.Add("confirm", []byte(`{"orders":[{"orderId":"order-1","productId":"product-1"}]}`))
	f.Add("check", []byte(`{"productId":"product-1","quantity":-2}`))
	f.Add("reserve", []byte(`{"orders":[{"orderId":"order-1","productId":"product-1","quantity":1}]}`))
	f.Add("reserve", []byte(`{"orders":[{"productId":"product-1","quantity":1}]}`))
	f.Add("reserve", []byte(`{"orders":[{"orderId":"order-2","productId":"product-1","quantity":1}],"confirm":[{"orderId":"order-1","productId":"product-1"}]}`))
	f.Add("reserve", []byte(`{"orders":[{"orderId":"order-2","productId":"product-1","quantity":1}],"confirm":[{"orderId":"../1","productId":""}]}`))
	f.Add("lease", []byte(`{"productId":"product-1","grant":{"id":"lease-ABCDEFGHIJKLMNOPQRSTUVWXY2","quantity":10,"secret":"0123456789abcdef0123456789abcdef"}}`))
	f.Add("lease", []byte(`{"productId":"product-1","settle":[{"id":"lease-ABCDEFGHIJKLMNOPQRSTUVWXY2","used":-1}]}`))
	app := runtime.New(runtime.Options{})
	var (
		orderIDs  []string
		checks    []stock.CheckRequest
		reserved  []stock.CheckRequest
		confirmed []stock.Confirmation // by /confirm or carried by /reserve
		leases    []lease.Request
	)
	runtime.Invoke(app, "POST /check", func(_ context.Context, in stock.CheckRequest) (struct{}, error) {
		checks = append(checks, in)
		orderIDs = append(orderIDs, in.OrderID)
		return struct{}{}, nil
	})
	runtime.Invoke(app, "POST /reserve", func(_ context.Context, in stock.ReserveRequest) (struct{}, error) {
		reserved = append(reserved, in.Orders...)
		checks = append(checks, in.Orders...)
		confirmed = append(confirmed, in.Confirm...)
		return struct{}{}, nil
	})
	runtime.Invoke(app, "POST /confirm", func(_ context.Context, in stock.ConfirmRequest) (struct{}, error) {
		confirmed = append(confirmed, in.Orders...)
		return struct{}{}, nil
	})
	runtime.Invoke(app, "POST /lease", func(_ context.Context, in lease.Request) (struct{}, error) {
		leases = append(leases, in)
		return struct{}{}, nil
	})
	f.Fuzz(func(t *testing.T, route string, body []byte) {
		orderIDs, checks, reserved, confirmed, leases = orderIDs[:0], checks[:0], reserved[:0], confirmed[:0], leases[:0]
		r := app.Dispatch(context.Background(), &runtime.Message{Kind: runtime.KindInvoke, Method: "POST", Path: route, ContentType: "application/json", Body: body})
		if r.Err != nil {
			if s := runtime.Classify(r.Err).Status; s < 400 || s > 499 {
				t.Fatalf("bad input must be a 4xx, got %d: %v", s, r.Err)
			}
			return
		}
		for _, c := range checks {
			if c.Quantity < 1 || c.Quantity > stock.MaxQuantity || c.ProductID == "" {
				t.Fatalf("invalid check reached the function: %+v", c)
			}
		}
		for _, c := range reserved {
			if !runtime.SafeID(c.OrderID) {
				t.Fatalf("a reservation without a safe order id reached the function: %+v", c)
			}
		}
		for _, c := range confirmed {
			if !runtime.SafeID(c.OrderID) || c.ProductID == "" {
				t.Fatalf("an invalid confirmation reached the function: %+v", c)
			}
		}
		for _, l := range leases {
			if l.ProductID == "" || l.Grant == nil && len(l.Settle) == 0 || l.Grant != nil && (!lease.ValidID(l.Grant.ID) || l.Grant.Quantity < 1) {
				t.Fatalf("an invalid lease request reached the function: %+v", l)
			}
		}
		for _, id := range orderIDs {
			if id != "" && !runtime.SafeID(id) {
				t.Fatalf("unsafe order id reached the function: %q", id)
			}
		}
	})
}
