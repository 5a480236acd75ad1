package orderevent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/daprfn/shop/bindings"
)

// Lookup finds a stored order: the truth that settles a hold or a lease
// whose order-service went silent, and that an order event without a valid
// signature is checked against.
type Lookup interface {
	LookupOrder(ctx context.Context, orderID string) (Stored, error)
}

// Stored is what the order function says of an order id.
type Stored struct {
	Found         bool // false: no order has the id
	ProductID     string
	Quantity      int
	CustomerEmail string
}

// LookupFunc is a Lookup from a function.
type LookupFunc func(ctx context.Context, orderID string) (Stored, error)

// LookupOrder implements Lookup.
func (f LookupFunc) LookupOrder(ctx context.Context, orderID string) (Stored, error) {
	return f(ctx, orderID)
}

// InvokeLookup is Lookup over service invocation of the order app:
// GET /orders/{id} answering 200 with the order, or 404. The seed's
// order-service answers the same way.
type InvokeLookup struct {
	Invoker bindings.Invoker
	AppID   string // e.g. "order-service"
}

// LookupOrder implements Lookup.
func (o InvokeLookup) LookupOrder(ctx context.Context, orderID string) (Stored, error) {
	out, err := o.Invoker.Invoke(ctx, o.AppID, "GET", "orders/"+orderID, nil)
	var ie *bindings.InvokeError
	switch {
	case err == nil:
	case errors.As(err, &ie) && ie.Status == 404:
		return Stored{}, nil
	default:
		return Stored{}, err
	}
	var got struct {
		ProductID     string `json:"productId"`
		Quantity      int    `json:"quantity"`
		CustomerEmail string `json:"customerEmail"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		return Stored{}, fmt.Errorf("%s answered GET /orders/%s with %q: %w", o.AppID, orderID, out, err)
	}
	return Stored{Found: true, ProductID: got.ProductID, Quantity: got.Quantity, CustomerEmail: got.CustomerEmail}, nil
}
