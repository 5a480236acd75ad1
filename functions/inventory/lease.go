package inventory

import (
	"context"

	"github.com/daprfn/shop/functions/lease"
)

// Lease settles and grants leases in one write (lease.Ledger.Apply). An
// unknown product is NotFound in the answer, not an error: an order-service
// tells it from an inventory without leases.
func (s *Service) Lease(ctx context.Context, in lease.Request) (lease.Answer, error) {
	if _, ok := s.byID[in.ProductID]; !ok {
		return lease.Answer{NotFound: true}, nil
	}
	var out lease.Answer
	err := s.update(ctx, in.ProductID, func(p *Product) (changed bool) {
		out, changed = p.Leases.Apply(in, &p.Stock, s.now().UTC())
		out.ProductName = p.Name
		return changed
	})
	return out, err
}
