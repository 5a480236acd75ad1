// Package orderevent is the order event the order function publishes on the
// orders topic and the notification function reads: the seed's shape, plus
// a signature by which a reader tells the order function's events from ones
// anybody could post through a sidecar's publish API.
package orderevent

import (
	"strconv"
	"strings"

	"github.com/daprfn/shop/runtime"
)

// Event is the order event, in the seed's shape (orderId, customerEmail,
// productId, quantity); Signature is ours, and the seed's readers ignore it.
type Event struct {
	OrderID       string `json:"orderId"`
	CustomerEmail string `json:"customerEmail"`
	ProductID     string `json:"productId"`
	Quantity      int    `json:"quantity"`
	// Signature is the order function's HMAC of the fields above, keyed by
	// Key. Events from the seed's order-service, or posted by hand, have none.
	Signature string `json:"signature,omitempty"`
}

// KeyPurpose names the key derived from the deployment's internal
// credential (runtime.DeriveKey) that signs order events.
const KeyPurpose = "order-events/v1"

// Key is the signing key of order events for the internal credential token;
// nil when token is empty (events then go unsigned).
func Key(token string) []byte { return runtime.DeriveKey(token, KeyPurpose) }

// Signed returns e with its Signature under key; with no key, e unsigned.
func (e Event) Signed(key []byte) Event {
	e.Signature = ""
	if len(key) > 0 {
		e.Signature = runtime.Sign(key, e.fields()...)
	}
	return e
}

// SignedBy reports whether e carries a valid signature under key.
func (e Event) SignedBy(key []byte) bool { return runtime.Verify(key, e.Signature, e.fields()...) }

func (e Event) fields() []string {
	return []string{e.OrderID, e.CustomerEmail, e.ProductID, strconv.Itoa(e.Quantity)}
}

// Validate implements runtime.Validator: events without an order id or a
// recipient cannot be processed and are dropped.
func (e Event) Validate() error {
	switch {
	case strings.TrimSpace(e.OrderID) == "":
		return runtime.Invalid("invalid_event", "order event without orderId")
	case !runtime.SafeID(e.OrderID):
		return runtime.Invalid("invalid_event", "order event with an orderId that is not 1 to 200 letters, digits, '-', '_' or '.'")
	case !strings.Contains(e.CustomerEmail, "@"):
		return runtime.Invalid("invalid_event", "order event %s without a customerEmail", e.OrderID)
	}
	return nil
}

// Matches reports whether e says what the stored order says: the same
// recipient, product and quantity.
func (e Event) Matches(customerEmail, productID string, quantity int) bool {
	return e.CustomerEmail == customerEmail && e.ProductID == productID && e.Quantity == quantity
}
