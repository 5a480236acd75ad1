package inventory

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/daprfn/shop/functions/stock"
)

// UnclaimedCheckPeriod is how long the checks without an order of one
// product share one hold: it is given back whole, HOLD_TTL after its first.
const UnclaimedCheckPeriod = 15 * time.Second

// Check takes Quantity from the product's stock when there is enough and
// says whether it did, as the seed does; an unknown product is a 404. The
// stock is held for the order, and checking the same order again takes
// nothing more. A check without an order id (the seed's order-service, or
// anybody through the public sidecar) is held as an unclaimed check, which
// the hold sweep gives back after HOLD_TTL.
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

// take applies one check to p, holding what it takes for in.OrderID; an
// order held already takes nothing more. took tells whether p changed.
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

// Reserve applies the carried confirmations (as Confirm does) and checks
// every order of in (as Check does), with one write per product. It fails
// as a whole only when the stock cannot be written; an unknown product
// fails its own orders only, and its confirmations are ignored.
func (s *Service) Reserve(ctx context.Context, in stock.ReserveRequest) (stock.ReserveResponse, error) {
	out := stock.ReserveResponse{Orders: make([]stock.Reservation, len(in.Orders))}
	takes := map[string][]int{} // product -> the indexes of its orders
	for i, c := range in.Orders {
		_, known := s.byID[c.ProductID]
		out.Orders[i].OrderID, out.Orders[i].NotFound = c.OrderID, !known
		if known {
			takes[c.ProductID] = append(takes[c.ProductID], i)
		}
	}
	confirms := map[string][]string{} // product -> the orders confirmed
	for _, c := range in.Confirm {
		if _, known := s.byID[c.ProductID]; known {
			confirms[c.ProductID] = append(confirms[c.ProductID], c.OrderID)
			if _, listed := takes[c.ProductID]; !listed {
				takes[c.ProductID] = nil // written even without orders
			}
		}
	}
	for _, product := range slices.Sorted(maps.Keys(takes)) {
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

// dropHolds makes the holds of the orders ids final and says how many there
// were; the others were settled before.
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
