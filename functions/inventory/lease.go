package inventory

import (
	"context"
	"fmt"
	"time"

	"github.com/daprfn/shop/functions/lease"
	"github.com/daprfn/shop/runtime"
)

// Lease is stock granted to one lease of an order-service (package lease):
// taken from Stock when granted, and settled by the order-service or, once
// older than HoldTTL, by SweepHolds.
type Lease struct {
	Quantity int       `json:"quantity"`
	Secret   string    `json:"secret"`
	At       time.Time `json:"at"`
}

// LeaseRequest is the body of POST /lease (lease.Request).
type LeaseRequest lease.Request

// Validate implements runtime.Validator.
func (r LeaseRequest) Validate() error {
	if err := validProductID(r.ProductID); err != nil {
		return err
	}
	if r.Grant == nil && len(r.Settle) == 0 {
		return runtime.Invalid("invalid_lease", "a lease request needs a grant, settlements or both")
	}
	if g := r.Grant; g != nil {
		if !lease.ValidID(g.ID) || !lease.ValidSecret(g.Secret) {
			return runtime.Invalid("invalid_lease", "grant needs an id (\"lease-\" and 26 base32 letters) and a secret of 32 hex digits")
		}
		if g.Quantity < 1 || g.Quantity > lease.MaxQuantity {
			return runtime.Invalid("invalid_lease", "grant quantity must be a whole number from 1 to %d", lease.MaxQuantity)
		}
	}
	if len(r.Settle) > lease.MaxSettlements {
		return runtime.Invalid("invalid_lease", "settle must list at most %d {id, used}", lease.MaxSettlements)
	}
	for _, st := range r.Settle {
		if !lease.ValidID(st.ID) {
			return runtime.Invalid("invalid_lease", "settlement id %q is not a lease id", st.ID)
		}
		if st.Used < 0 || st.Used > lease.MaxQuantity {
			return runtime.Invalid("invalid_lease", "settlement used must be a whole number from 0 to %d", lease.MaxQuantity)
		}
	}
	return nil
}

// Lease settles the leases in.Settle and grants in.Grant, in one write.
// A lease is granted only while the product has at least lease.Cover times
// its quantity in stock; a grant asked again answers as the first did while
// the lease is not settled. An unknown product is NotFound in the answer,
// so that an order-service can tell it from an inventory without leases.
func (s *Service) Lease(ctx context.Context, in LeaseRequest) (lease.Answer, error) {
	if _, ok := s.byID[in.ProductID]; !ok {
		return lease.Answer{NotFound: true}, nil
	}
	var out lease.Answer
	err := s.update(ctx, in.ProductID, func(p *Product) bool {
		out = lease.Answer{ProductName: p.Name}
		changed := false
		for _, st := range in.Settle {
			if settleLease(p, st.ID, st.Used) {
				out.Settled++
				changed = true
			}
		}
		if g := in.Grant; g != nil {
			if _, ok := p.Leases[g.ID]; ok {
				out.Granted = true
			} else if p.Stock >= lease.Cover*g.Quantity {
				p.Stock -= g.Quantity
				if p.Leases == nil {
					p.Leases = map[string]Lease{}
				}
				p.Leases[g.ID] = Lease{Quantity: g.Quantity, Secret: g.Secret, At: s.now().UTC()}
				out.Granted, changed = true, true
			}
		}
		out.RemainingStock = p.Stock
		return changed
	})
	if err != nil {
		return lease.Answer{}, err
	}
	return out, nil
}

// settleLease closes lease id of p: used of its units stay taken, the rest
// go back to the stock. It says whether there was such a lease.
func settleLease(p *Product, id string, used int) bool {
	l, ok := p.Leases[id]
	if !ok {
		return false
	}
	delete(p.Leases, id)
	p.Stock += l.Quantity - min(max(used, 0), l.Quantity)
	return true
}

// leaseUse counts the units a lease's stored orders took, looking up the
// order of each of its slots: a lease of n units has at most n orders.
func (s *Service) leaseUse(ctx context.Context, productID, id string, l Lease) (int, error) {
	slots := lease.NewSlots(lease.Grant{ID: id, Quantity: l.Quantity, Secret: l.Secret})
	used := 0
	for slot := range l.Quantity {
		orderID := slots.OrderID(slot)
		o, err := s.orders.LookupOrder(ctx, orderID)
		if err != nil {
			return 0, fmt.Errorf("look up order %s: %w", orderID, err)
		}
		if o.Found && o.ProductID == productID {
			used += o.Quantity
		}
	}
	return used, nil
}
