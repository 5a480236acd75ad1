package inventory

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/daprfn/shop/functions/stock"
)

// UnclaimedCheckPeriod is how long the checks without an order of one
// product share one hold: it is given back whole, HOLD_TTL after its first.
const UnclaimedCheckPeriod = 15 * time.Second

// Check takes Quantity of the product, held for the order, if there is
// enough, and says whether it did, as the seed does (an unknown product is
// a 404); the same order takes nothing twice. A check without an order (the
// seed's, or anybody's) is held unclaimed: the hold sweep gives it back.
func (s *Service) Check(ctx context.Context, in stock.CheckRequest) (stock.CheckResponse, error) {
	if in.OrderID == "" { // one hold per product and period keeps the record small
		in.OrderID = stock.UnclaimedCheckPrefix + strconv.FormatInt(s.now().Unix()/int64(UnclaimedCheckPeriod/time.Second), 36)
	}
	var out stock.CheckResponse
	err := s.update(ctx, in.ProductID, func(p *Product) (took bool) {
		out, took = s.take(p, in)
		return took
	})
	return out, err
}

// take applies one check to p; took tells whether p changed.
func (s *Service) take(p *Product, in stock.CheckRequest) (out stock.CheckResponse, took bool) {
	out = stock.CheckResponse{ProductName: p.Name, Available: p.Stock >= in.Quantity}
	if _, held := p.Holds[in.OrderID]; held && !strings.HasPrefix(in.OrderID, stock.UnclaimedCheckPrefix) {
		out.Available, out.RemainingStock = true, p.Stock
		return out, false
	}
	if out.Available {
		p.Stock -= in.Quantity
		if p.Holds == nil {
			p.Holds = map[string]Hold{}
		}
		h := p.Holds[in.OrderID] // an unclaimed period's hold adds up
		if h.At.IsZero() {
			h.At = s.now().UTC()
		}
		h.Quantity += in.Quantity
		p.Holds[in.OrderID] = h
	}
	out.RemainingStock = p.Stock
	return out, out.Available
}

// Reserve applies the carried confirmations (as Confirm) and checks every
// order of in (as Check), with one write per product. It fails as a whole
// only when the stock cannot be written; an unknown product fails its own
// orders only, and its confirmations are ignored.
func (s *Service) Reserve(ctx context.Context, in stock.ReserveRequest) (stock.ReserveResponse, error) {
	out := stock.ReserveResponse{Orders: make([]stock.Reservation, len(in.Orders))}
	takes, confirms := map[string][]int{}, map[string][]string{} // by product
	for i, c := range in.Orders {
		_, known := s.byID[c.ProductID]
		out.Orders[i].OrderID, out.Orders[i].NotFound = c.OrderID, !known
		takes[c.ProductID] = append(takes[c.ProductID], i)
	}
	for _, c := range in.Confirm {
		confirms[c.ProductID] = append(confirms[c.ProductID], c.OrderID)
	}
	for _, it := range s.catalog {
		product := it.ID
		if takes[product] == nil && confirms[product] == nil {
			continue
		}
		n := 0
		err := s.update(ctx, product, func(p *Product) bool {
			n = dropHolds(p, confirms[product])
			changed := n > 0
			for _, i := range takes[product] {
				r, took := s.take(p, in.Orders[i])
				out.Orders[i].CheckResponse, changed = r, took || changed
			}
			return changed
		})
		if err != nil {
			return stock.ReserveResponse{}, err
		}
		out.Confirmed += n
	}
	return out, nil
}

// Confirm makes the holds of stored orders final, with one write per
// product; holds settled before, and unknown products, count for nothing.
func (s *Service) Confirm(ctx context.Context, in stock.ConfirmRequest) (stock.ConfirmResponse, error) {
	r, err := s.Reserve(ctx, stock.ReserveRequest{Confirm: in.Orders})
	return stock.ConfirmResponse{Confirmed: r.Confirmed}, err
}

// dropHolds makes the holds of the orders ids final and counts them.
func dropHolds(p *Product, ids []string) int {
	n := 0
	for _, id := range ids {
		if _, ok := p.Holds[id]; ok {
			delete(p.Holds, id)
			n++
		}
	}
	return n
}
