package state_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/daprfn/shop/bindings/memory"
	"github.com/daprfn/shop/runtime/state"
)

// A function takes units of a product's stock: the change runs on the value
// as stored, and is written only if nobody changed it meanwhile.
func ExampleUpdate() {
	ctx, store := context.Background(), memory.NewStore() // in a function: the sidecar's state store
	type product struct {
		Stock int `json:"stock"`
	}
	errShort := errors.New("not enough stock")
	take := func(n int) error {
		_, err := state.Update(ctx, store, "stock-product-1", func(p *product, found bool) error {
			if !found {
				p.Stock = 10 // a product starts with 10 units
			}
			if p.Stock < n {
				return errShort // nothing is written
			}
			p.Stock -= n
			return nil
		})
		return err
	}
	fmt.Println(take(4), take(4), take(4))
	// Output: <nil> <nil> not enough stock
}

// Records kept under keys of their own are found again through an index:
// each record is written first, then its id listed.
func ExampleIndex() {
	ctx, store := context.Background(), memory.NewStore()
	unsent := state.Index{Store: store, Key: "unsent-index"}
	for _, id := range []string{"order-1", "order-2"} {
		_ = store.Save(ctx, "unsent-"+id, []byte(`{"to":"a@example.com"}`), "")
		_, _ = unsent.Add(ctx, id)
	}
	ids, _ := unsent.List(ctx)
	fmt.Println(ids)
	// Output: [order-1 order-2]
}
