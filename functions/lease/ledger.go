package lease

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/daprfn/shop/functions/orderevent"
)

// Held is a lease as the inventory keeps it in its product's record: its
// units were taken from the stock when it was granted, and what its orders
// did not take goes back when it is settled.
type Held struct {
	Quantity int       `json:"quantity"`
	Secret   string    `json:"secret"`
	At       time.Time `json:"at"` // when it was granted
}

// Ledger is the inventory's side of the leases of one product, by lease id.
type Ledger map[string]Held

// Leased is how many units the leases hold.
func (l Ledger) Leased() int {
	n := 0
	for _, h := range l {
		n += h.Quantity
	}
	return n
}

// Apply settles the leases req.Settle and grants req.Grant, at now, from
// the product's stock: a lease is granted only while the stock has at least
// Cover times its quantity, and a grant asked again answers as the first did
// while the lease is not settled. The answer's ProductName is left to the
// caller; changed tells whether the ledger or the stock changed.
func (l *Ledger) Apply(req Request, stock *int, now time.Time) (ans Answer, changed bool) {
	for _, st := range req.Settle {
		if back, ok := l.Settle(st.ID, st.Used); ok {
			*stock += back
			ans.Settled++
			changed = true
		}
	}
	if g := req.Grant; g != nil {
		if _, ok := (*l)[g.ID]; ok {
			ans.Granted = true
		} else if *stock >= Cover*g.Quantity {
			*stock -= g.Quantity
			if *l == nil {
				*l = Ledger{}
			}
			(*l)[g.ID] = Held{Quantity: g.Quantity, Secret: g.Secret, At: now}
			ans.Granted, changed = true, true
		}
	}
	ans.RemainingStock = *stock
	return ans, changed
}

// Settle closes lease id, of which used units stay taken: back is what goes
// back to the stock. ok is false when there is no such lease (settled
// before).
func (l Ledger) Settle(id string, used int) (back int, ok bool) {
	h, ok := l[id]
	if !ok {
		return 0, false
	}
	delete(l, id)
	return h.Quantity - min(max(used, 0), h.Quantity), true
}

// Used counts, for each lease granted before cutoff, the units its stored
// orders of productID took: how the inventory settles the leases whose
// order-service never settled them. A lease of n units has at most n
// orders, one per slot, all looked up in one call (orderevent.LookupAll).
// A lease whose orders cannot be looked up is left out, with an error.
func (l Ledger) Used(ctx context.Context, orders orderevent.Lookup, productID string, cutoff time.Time) (map[string]int, error) {
	used := map[string]int{}
	var errs []error
	for id, h := range l {
		if h.At.After(cutoff) {
			continue
		}
		slots := NewSlots(Grant{ID: id, Quantity: h.Quantity, Secret: h.Secret})
		ids := make([]string, h.Quantity)
		for slot := range ids {
			ids[slot] = slots.OrderID(slot)
		}
		found, err := orderevent.LookupAll(ctx, orders, ids)
		if err != nil {
			errs = append(errs, fmt.Errorf("settle lease %s: %w", id, err))
			continue
		}
		used[id] = 0
		for _, o := range found {
			if o.Found && o.ProductID == productID {
				used[id] += o.Quantity
			}
		}
	}
	return used, errors.Join(errs...)
}

// SettleAll settles the leases of used, lease id -> units used, as Settle
// does: back is what goes back to the stock, and settled how many there
// were.
func (l Ledger) SettleAll(used map[string]int) (back, settled int) {
	for id, n := range used {
		if b, ok := l.Settle(id, n); ok {
			back, settled = back+b, settled+1
		}
	}
	return back, settled
}
