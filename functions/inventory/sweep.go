package inventory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/daprfn/shop/functions/stock"
	"github.com/daprfn/shop/runtime"
)

// SweepHolds is a cron step that settles the holds older than HoldTTL that
// nobody confirmed (a failed commit, a dead order-service): the stock of a
// stored order stays taken, that of one that does not exist comes back, and
// a hold whose order cannot be looked up waits for the next run. Leases
// nobody settled are settled by their orders (lease.Ledger.Used).
func (s *Service) SweepHolds(ctx context.Context, _ runtime.BindingEvent[struct{}]) error {
	if s.orders == nil {
		return nil
	}
	products, err := s.products(ctx)
	if err != nil {
		return runtime.RetryLater(err)
	}
	var errs []error
	for i, p := range products {
		errs = append(errs, s.sweep(ctx, s.catalog[i].ID, p, s.now().Add(-s.ttl)))
	}
	return retryLater(errs)
}

// sweep settles p's holds and leases older than cutoff, in one write.
func (s *Service) sweep(ctx context.Context, product string, p Product, cutoff time.Time) error {
	used, err := p.Leases.Used(ctx, s.orders, product, cutoff)
	errs := []error{err}
	stored := map[string]bool{} // hold -> its order exists
	for id, h := range p.Holds {
		switch {
		case h.At.After(cutoff):
		case strings.HasPrefix(id, stock.UnclaimedCheckPrefix):
			stored[id] = false
		default:
			o, err := s.orders.LookupOrder(ctx, id)
			if err != nil {
				errs = append(errs, fmt.Errorf("look up order %s: %w", id, err))
				continue
			}
			stored[id] = o.Found
		}
	}
	if len(stored) > 0 || len(used) > 0 {
		errs = append(errs, s.update(ctx, product, func(p *Product) bool {
			back, settled := p.Leases.SettleAll(used)
			p.Stock += back
			for id, found := range stored {
				if h, ok := p.Holds[id]; ok { // else settled meanwhile
					delete(p.Holds, id)
					if !found {
						p.Stock += h.Quantity
					}
					settled++
				}
			}
			return settled > 0
		}))
	}
	return errors.Join(errs...)
}

// Restock tops every product up to the restock level, counting the units
// leased out as stock. It only raises stock, so running it twice in a row
// changes nothing the second time.
func (s *Service) Restock(ctx context.Context, _ runtime.BindingEvent[struct{}]) error {
	var errs []error
	for _, it := range s.catalog {
		target := s.level
		if target <= 0 {
			target = it.Stock
		}
		err := s.update(ctx, it.ID, func(p *Product) bool {
			leased := p.Leases.Leased() // stock until settled
			if p.Stock+leased >= target || s.restockEvery > 0 && s.now().Sub(p.RestockedAt) < s.restockEvery {
				return false // full, or topped up lately: the next scheduled restock will
			}
			p.Stock, p.RestockedAt = target-leased, s.now().UTC()
			return true
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("restock %s: %w", it.ID, err))
		}
	}
	return retryLater(errs)
}

// retryLater asks for the cron step again when any of errs is not nil.
func retryLater(errs []error) error {
	if err := errors.Join(errs...); err != nil {
		return runtime.RetryLater(err)
	}
	return nil
}
