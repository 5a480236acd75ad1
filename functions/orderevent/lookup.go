package orderevent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/runtime"
)

// Lookup finds a stored order: the truth that settles a hold or a lease
// whose order-service went silent, and that an order event without a valid
// signature is checked against.
type Lookup interface {
	LookupOrder(ctx context.Context, orderID string) (Stored, error)
}

// BulkLookup is a Lookup that also finds many orders in one call, as the
// inventory needs to settle a lease: one order per slot, up to a thousand.
// LookupAll uses it when a Lookup has it.
type BulkLookup interface {
	Lookup
	// LookupOrders says of each of ids what LookupOrder would, in the
	// order of ids.
	LookupOrders(ctx context.Context, ids []string) ([]Stored, error)
}

// Stored is what the order function says of an order id.
type Stored struct {
	Found         bool // false: no order has the id
	ProductID     string
	Quantity      int
	CustomerEmail string
}

// LookupAll looks ids up: in one call when l is a BulkLookup, else one by
// one. It fails as a whole when any id cannot be looked up.
func LookupAll(ctx context.Context, l Lookup, ids []string) ([]Stored, error) {
	if b, ok := l.(BulkLookup); ok {
		return b.LookupOrders(ctx, ids)
	}
	return lookupEach(ctx, l, ids)
}

func lookupEach(ctx context.Context, l Lookup, ids []string) ([]Stored, error) {
	out := make([]Stored, len(ids))
	for i, id := range ids {
		o, err := l.LookupOrder(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("look up order %s: %w", id, err)
		}
		out[i] = o
	}
	return out, nil
}

// LookupFunc is a Lookup from a function.
type LookupFunc func(ctx context.Context, orderID string) (Stored, error)

// LookupOrder implements Lookup.
func (f LookupFunc) LookupOrder(ctx context.Context, orderID string) (Stored, error) {
	return f(ctx, orderID)
}

// BulkLookupFunc is a BulkLookup from a function that looks many orders up
// at once (the order function in the same process); LookupOrder asks it
// for one.
type BulkLookupFunc func(ctx context.Context, ids []string) ([]Stored, error)

// LookupOrder implements Lookup.
func (f BulkLookupFunc) LookupOrder(ctx context.Context, orderID string) (Stored, error) {
	out, err := f(ctx, []string{orderID})
	if err != nil {
		return Stored{}, err
	}
	if len(out) != 1 {
		return Stored{}, fmt.Errorf("looking up order %s gave %d answers", orderID, len(out))
	}
	return out[0], nil
}

// LookupOrders implements BulkLookup.
func (f BulkLookupFunc) LookupOrders(ctx context.Context, ids []string) ([]Stored, error) {
	return f(ctx, ids)
}

// MaxLookup bounds the ids of one POST /orders/lookup.
const MaxLookup = 1000

// LookupRequest is the body of the order function's POST /orders/lookup:
// the ids of up to MaxLookup orders to look up in one call.
type LookupRequest struct {
	IDs []string `json:"ids"`
}

// Validate implements runtime.Validator.
func (r LookupRequest) Validate() error {
	if len(r.IDs) == 0 || len(r.IDs) > MaxLookup {
		return runtime.Invalid("invalid_order_ids", "ids must list 1 to %d order ids", MaxLookup)
	}
	for _, id := range r.IDs {
		if !runtime.SafeID(id) {
			return runtime.Invalid("invalid_order_ids", "every id must be 1 to 200 letters, digits, '-', '_' or '.', not starting with '.'")
		}
	}
	return nil
}

// LookupResponse answers POST /orders/lookup: the stored orders among the
// ids asked for, each as GET /orders/{id} answers it; an id of no order is
// left out.
type LookupResponse struct {
	Orders []json.RawMessage `json:"orders"`
}

// Stored says of each of ids what r says, in the order of ids.
func (r LookupResponse) Stored(ids []string) ([]Stored, error) {
	found := make(map[string]Stored, len(r.Orders))
	for _, raw := range r.Orders {
		var o storedOrder
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, fmt.Errorf("an order looked up is not an order (%q): %w", raw, err)
		}
		found[o.ID] = o.stored()
	}
	out := make([]Stored, len(ids))
	for i, id := range ids {
		out[i] = found[id]
	}
	return out, nil
}

// storedOrder is the part of a stored order a Lookup reads.
type storedOrder struct {
	ID            string `json:"id"`
	ProductID     string `json:"productId"`
	Quantity      int    `json:"quantity"`
	CustomerEmail string `json:"customerEmail"`
}

func (o storedOrder) stored() Stored {
	return Stored{Found: true, ProductID: o.ProductID, Quantity: o.Quantity, CustomerEmail: o.CustomerEmail}
}

// InvokeLookup is BulkLookup over service invocation of the order app:
// GET /orders/{id} answering 200 with the order, or 404 (the seed's
// order-service answers the same way), and the internal POST /orders/lookup
// for many. An order app without that route (the seed's) is asked one order
// at a time.
type InvokeLookup struct {
	Invoker bindings.Invoker
	AppID   string // e.g. "order-service"
}

// LookupOrder implements Lookup.
func (o InvokeLookup) LookupOrder(ctx context.Context, orderID string) (Stored, error) {
	out, err := o.Invoker.Invoke(ctx, o.AppID, "GET", "orders/"+orderID, nil)
	if ie, ok := errors.AsType[*bindings.InvokeError](err); ok && ie.Status == 404 {
		return Stored{}, nil
	}
	if err != nil {
		return Stored{}, err
	}
	var got storedOrder
	if err := json.Unmarshal(out, &got); err != nil {
		return Stored{}, fmt.Errorf("%s answered GET /orders/%s with %q: %w", o.AppID, orderID, out, err)
	}
	return got.stored(), nil
}

// LookupOrders implements BulkLookup: one POST /orders/lookup per MaxLookup
// ids.
func (o InvokeLookup) LookupOrders(ctx context.Context, ids []string) ([]Stored, error) {
	out := make([]Stored, 0, len(ids))
	for start := 0; start < len(ids); start += MaxLookup {
		chunk := ids[start:min(start+MaxLookup, len(ids))]
		body, err := json.Marshal(LookupRequest{IDs: chunk})
		if err != nil {
			return nil, err
		}
		raw, err := o.Invoker.Invoke(ctx, o.AppID, "POST", "orders/lookup", body)
		if ie, ok := errors.AsType[*bindings.InvokeError](err); ok && (ie.Status == 404 || ie.Status == 405) {
			return lookupEach(ctx, o, ids) // no such route: the seed's order-service
		}
		if err != nil {
			return nil, err
		}
		var ans LookupResponse
		if err := json.Unmarshal(raw, &ans); err != nil {
			return nil, fmt.Errorf("%s answered POST /orders/lookup with %q: %w", o.AppID, raw, err)
		}
		found, err := ans.Stored(chunk)
		if err != nil {
			return nil, fmt.Errorf("%s answered POST /orders/lookup: %w", o.AppID, err)
		}
		out = append(out, found...)
	}
	return out, nil
}
