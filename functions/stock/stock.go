package stock

import (
	"context"
	"strings"

	"github.com/daprfn/shop/runtime"
)

// Stock is the inventory as the order function needs it. Stock taken for an
// order is held until the order is confirmed; the inventory settles holds
// nobody confirmed by looking the order up (inventory.Service.SweepHolds),
// so neither a failed commit nor a crash between Take and the commit leaks
// stock, and an order whose commit outcome is unknown is never oversold.
type Stock interface {
	// Take takes qty of the product for orderID if there is enough; taking
	// again for the same order takes nothing more. An unknown product is an
	// error that classifies as NotFound.
	Take(ctx context.Context, orderID, productID string, qty int) (Availability, error)
	// Confirm queues the confirmation that an order was stored, so its hold
	// becomes final; the Stock sends it when it suits (with later takes, or
	// on its own within a short while). It never holds the order up: a lost
	// confirmation costs only time, as the inventory's hold sweep settles the
	// hold by looking the order up.
	Confirm(t Taken)
}

// Availability is the inventory's answer to a stock request.
type Availability struct {
	Available   bool
	ProductName string
	Remaining   int
	// OrderID, when set, is the id the order must be stored under: the
	// Stock chose it (lease.Stock: the id of the order's slot in a lease).
	OrderID string
}

// Taken names an order and the product it took stock of.
type Taken struct {
	OrderID   string `json:"orderId"`
	ProductID string `json:"productId"`
}

// ErrProductNotFound is the seed's 404 for an unknown product.
var ErrProductNotFound = runtime.NotFound("product_not_found", "Product not found")

// UnclaimedCheckPrefix starts the id the inventory holds a check without an
// order id under. No order has such an id, and no caller may name one so.
const UnclaimedCheckPrefix = "check-"

// CheckRequest is the body of POST /check: the seed's contract plus an
// optional order id. The stock taken is held for the order until it is
// confirmed or settled, and asking again for the same order takes nothing
// twice. A check without an order id (the seed's order-service sends none)
// is held under an id of its own (UnclaimedCheckPrefix), which no order can
// confirm: the hold sweep gives it back after the hold's TTL.
type CheckRequest struct {
	ProductID string `json:"productId"`
	Quantity  int    `json:"quantity"`
	OrderID   string `json:"orderId,omitempty"`
}

// MaxQuantity is the largest quantity one check may take.
const MaxQuantity = 1_000_000

// Validate implements runtime.Validator.
func (r CheckRequest) Validate() error {
	if err := ValidateProductID(r.ProductID); err != nil {
		return err
	}
	if r.Quantity < 1 || r.Quantity > MaxQuantity {
		return runtime.Invalid("invalid_quantity", "quantity must be a whole number from 1 to %d", MaxQuantity)
	}
	if strings.HasPrefix(r.OrderID, UnclaimedCheckPrefix) {
		return runtime.Invalid("invalid_order_id", "orderId may not start with %q: the inventory names checks without an order so", UnclaimedCheckPrefix)
	}
	if r.OrderID != "" {
		return validateOrderID(r.OrderID)
	}
	return nil
}

// ValidateProductID accepts a product id of 1 to 100 characters, not all
// blank.
func ValidateProductID(id string) error {
	if strings.TrimSpace(id) == "" {
		return runtime.Invalid("invalid_product_id", "productId is required")
	}
	if len(id) > 100 {
		return runtime.Invalid("invalid_product_id", "productId must be at most 100 characters")
	}
	return nil
}

// validateOrderID accepts ids of letters, digits, '-', '_' and '.', as the
// order function makes them ("order-" and hex), up to 200 characters.
func validateOrderID(id string) error {
	if !runtime.SafeID(id) {
		return runtime.Invalid("invalid_order_id", "orderId must be 1 to 200 letters, digits, '-', '_' or '.', not starting with '.'")
	}
	return nil
}

// CheckResponse is the seed's answer of POST /check.
type CheckResponse struct {
	Available      bool   `json:"available"`
	ProductName    string `json:"productName"`
	RemainingStock int    `json:"remainingStock"`
}

// ReserveRequest is the body of POST /reserve: the checks of several
// orders in one call, each with its order id. Confirm carries the
// confirmations of orders stored since (as POST /confirm does), applied in
// the same write as the takes of their product, so a hold lasts about one
// call and a product's record stays small however busy the shop is.
type ReserveRequest struct {
	Orders  []CheckRequest `json:"orders"`
	Confirm []Confirmation `json:"confirm,omitempty"`
}

// MaxReservations bounds the orders of one POST /reserve.
const MaxReservations = 1000

// Validate implements runtime.Validator.
func (r ReserveRequest) Validate() error {
	if len(r.Orders) == 0 || len(r.Orders) > MaxReservations {
		return runtime.Invalid("invalid_reservations", "orders must list 1 to %d {orderId, productId, quantity}", MaxReservations)
	}
	for _, c := range r.Orders {
		if c.OrderID == "" {
			return runtime.Invalid("invalid_order_id", "every reservation needs its orderId")
		}
		if err := c.Validate(); err != nil {
			return err
		}
	}
	if len(r.Confirm) > MaxConfirmations {
		return runtime.Invalid("invalid_confirmations", "confirm must list at most %d {orderId, productId}", MaxConfirmations)
	}
	return validateConfirmations(r.Confirm)
}

// Reservation is the answer to one order of POST /reserve: /check's answer,
// or NotFound for an unknown product.
type Reservation struct {
	OrderID string `json:"orderId"`
	CheckResponse
	NotFound bool `json:"notFound,omitempty"`
}

// ReserveResponse answers POST /reserve, one reservation per order, in the
// request's order, and how many of the carried confirmations dropped a hold.
type ReserveResponse struct {
	Orders    []Reservation `json:"orders"`
	Confirmed int           `json:"confirmed"`
}

// ConfirmRequest is the body of POST /confirm: orders that were stored, so
// their holds become final.
type ConfirmRequest struct {
	Orders []Confirmation `json:"orders"`
}

// Confirmation names one stored order and the product it holds.
type Confirmation struct {
	OrderID   string `json:"orderId"`
	ProductID string `json:"productId"`
}

// MaxConfirmations bounds the confirmations of one call.
const MaxConfirmations = 1000

// Validate implements runtime.Validator.
func (r ConfirmRequest) Validate() error {
	if len(r.Orders) == 0 || len(r.Orders) > MaxConfirmations {
		return runtime.Invalid("invalid_confirmations", "orders must list 1 to %d {orderId, productId}", MaxConfirmations)
	}
	return validateConfirmations(r.Orders)
}

func validateConfirmations(cs []Confirmation) error {
	for _, c := range cs {
		if err := validateOrderID(c.OrderID); err != nil {
			return err
		}
		if err := ValidateProductID(c.ProductID); err != nil {
			return err
		}
	}
	return nil
}

// ConfirmResponse answers POST /confirm.
type ConfirmResponse struct {
	Confirmed int `json:"confirmed"` // holds dropped; the others were settled before
}
