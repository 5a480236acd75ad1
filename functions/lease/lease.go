package lease

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"strconv"

	"github.com/daprfn/shop/functions/stock"
	"github.com/daprfn/shop/runtime"
)

// Request is the body of the inventory's POST /lease: settle earlier leases
// of one product and, with Grant, ask for a new one, in one write.
type Request struct {
	ProductID string       `json:"productId"`
	Grant     *Grant       `json:"grant,omitempty"`
	Settle    []Settlement `json:"settle,omitempty"`
}

// Validate implements runtime.Validator.
func (r Request) Validate() error {
	if err := stock.ValidateProductID(r.ProductID); err != nil {
		return err
	}
	if r.Grant == nil && len(r.Settle) == 0 {
		return runtime.Invalid("invalid_lease", "a lease request needs a grant, settlements or both")
	}
	if g := r.Grant; g != nil {
		if !ValidID(g.ID) || !ValidSecret(g.Secret) {
			return runtime.Invalid("invalid_lease", "grant needs an id (\"lease-\" and 26 base32 letters) and a secret of 32 hex digits")
		}
		if g.Quantity < 1 || g.Quantity > MaxQuantity {
			return runtime.Invalid("invalid_lease", "grant quantity must be a whole number from 1 to %d", MaxQuantity)
		}
	}
	if len(r.Settle) > MaxSettlements {
		return runtime.Invalid("invalid_lease", "settle must list at most %d {id, used}", MaxSettlements)
	}
	for _, st := range r.Settle {
		if !ValidID(st.ID) {
			return runtime.Invalid("invalid_lease", "settlement id %q is not a lease id", st.ID)
		}
		if st.Used < 0 || st.Used > MaxQuantity {
			return runtime.Invalid("invalid_lease", "settlement used must be a whole number from 0 to %d", MaxQuantity)
		}
	}
	return nil
}

// Grant asks for Quantity units under a new lease.
type Grant struct {
	ID       string `json:"id"`       // "lease-" and 26 base32 letters (NewGrant, ValidID)
	Quantity int    `json:"quantity"` // units, at most MaxQuantity
	Secret   string `json:"secret"`   // 32 hex digits: the key of the lease's order ids
}

// Settlement closes a lease: Used of its units were taken by stored orders,
// the rest go back to the stock.
type Settlement struct {
	ID   string `json:"id"`
	Used int    `json:"used"`
}

// Answer is the inventory's answer to POST /lease.
type Answer struct {
	// Granted: the units are taken for the lease (also when the same grant
	// is asked again). The inventory grants a lease only while the product
	// has at least Cover times its quantity in stock.
	Granted        bool   `json:"granted"`
	NotFound       bool   `json:"notFound,omitempty"` // no such product: nothing granted
	ProductName    string `json:"productName"`
	RemainingStock int    `json:"remainingStock"`
	Settled        int    `json:"settled"` // settlements applied; the others were settled before
}

// MaxQuantity bounds one lease, and so the orders the hold sweep looks up
// to settle a lease whose order-service died.
const MaxQuantity = 1000

// MaxSettlements bounds the settlements of one request.
const MaxSettlements = 1000

// Cover: a lease of n units is granted only while the product has at least
// Cover·n in stock, so that leases never hold back stock another
// order-service replica could sell, but from a product that has plenty.
const Cover = 16

// NewGrant returns a grant of quantity units with a fresh id and secret.
func NewGrant(quantity int) Grant {
	return Grant{ID: "lease-" + rand.Text(), Quantity: quantity, Secret: hex.EncodeToString(randomBytes())}
}

func randomBytes() []byte {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return b[:]
}

// OrderID is the id of the order in the given slot of a lease: "order-"
// and 32 hex digits, as the order-service's other ids, keyed by the lease's
// secret. An invalid secret gives ids no order has. For many slots of one
// lease, Slots keys the HMAC once.
func OrderID(g Grant, slot int) string { return NewSlots(g).OrderID(slot) }

// Slots derives the order ids of one lease's slots (OrderID) with the
// lease's HMAC keyed once. It is not safe for concurrent use.
type Slots struct {
	id  string
	mac hash.Hash // nil: the secret is not hex
	buf []byte
}

// NewSlots returns the Slots of g.
func NewSlots(g Grant) *Slots {
	key, err := hex.DecodeString(g.Secret)
	if err != nil {
		return &Slots{}
	}
	return &Slots{id: g.ID, mac: hmac.New(sha256.New, key)}
}

// OrderID is the id of the order in the given slot.
func (s *Slots) OrderID(slot int) string {
	if s.mac == nil {
		return "order-invalid-lease-secret"
	}
	s.mac.Reset()
	s.buf = append(append(append(s.buf[:0], s.id...), 0), strconv.Itoa(slot)...)
	s.mac.Write(s.buf)
	s.buf = s.mac.Sum(s.buf[:0])
	return "order-" + hex.EncodeToString(s.buf[:16])
}

// ValidID tells whether id is a lease id as NewGrant makes them.
func ValidID(id string) bool {
	if len(id) != len("lease-")+26 || id[:6] != "lease-" {
		return false
	}
	for _, c := range id[6:] {
		if !('A' <= c && c <= 'Z' || '2' <= c && c <= '7') {
			return false
		}
	}
	return true
}

// ValidSecret tells whether s is 32 hex digits.
func ValidSecret(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
