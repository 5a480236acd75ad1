package order

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/runtime"
)

// InvokeStock is Stock over service invocation of the inventory app
// (POST /check and /confirm, the inventory's wire contract).
type InvokeStock struct {
	Invoker bindings.Invoker
	AppID   string // e.g. "inventory-service"
}

type checkBody struct {
	OrderID   string `json:"orderId,omitempty"`
	ProductID string `json:"productId"`
	Quantity  int    `json:"quantity,omitempty"`
}

type checkAnswer struct {
	Available      bool   `json:"available"`
	ProductName    string `json:"productName"`
	RemainingStock int    `json:"remainingStock"`
}

// Take implements Stock.
func (s InvokeStock) Take(ctx context.Context, orderID, productID string, qty int) (Availability, error) {
	body, _ := json.Marshal(checkBody{OrderID: orderID, ProductID: productID, Quantity: qty})
	out, err := s.Invoker.Invoke(ctx, s.AppID, "POST", "check", body)
	if err != nil {
		return Availability{}, invokeError(err)
	}
	var a checkAnswer
	if err := json.Unmarshal(out, &a); err != nil {
		return Availability{}, fmt.Errorf("inventory %s answered %q: %w", s.AppID, out, err)
	}
	return Availability{Available: a.Available, ProductName: a.ProductName, Remaining: a.RemainingStock}, nil
}

// Confirm implements Stock.
func (s InvokeStock) Confirm(ctx context.Context, taken []Taken) error {
	body, _ := json.Marshal(struct {
		Orders []Taken `json:"orders"`
	}{taken})
	_, err := s.Invoker.Invoke(ctx, s.AppID, "POST", "confirm", body)
	return err
}

// invokeError keeps a 404 a NotFound so callers can tell an unknown product.
func invokeError(err error) error {
	var ie *bindings.InvokeError
	if errors.As(err, &ie) && ie.Status == 404 {
		return &runtime.Error{Outcome: runtime.Drop, Status: 404, Code: "product_not_found", Message: "Product not found", Err: err}
	}
	return err
}
