package order

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/daprfn/shop/functions/orderevent"
	"github.com/daprfn/shop/runtime"
)

// Lookup answers the internal POST /orders/lookup: the stored orders among
// in.IDs, each as GET /orders/{id} answers it, read in one bulk call to the
// state store. The inventory settles the lease of an order-service that
// died by looking up the orders of all its slots in one call.
func (s *Service) Lookup(ctx context.Context, in orderevent.LookupRequest) (orderevent.LookupResponse, error) {
	keys := make([]string, 0, len(in.IDs))
	for _, id := range in.IDs {
		if strings.HasPrefix(id, "order-") { // no other key of the store is an order
			keys = append(keys, id)
		}
	}
	out := orderevent.LookupResponse{Orders: []json.RawMessage{}}
	if len(keys) == 0 {
		return out, nil
	}
	items, err := s.Store.BulkGet(ctx, keys)
	if err != nil {
		return orderevent.LookupResponse{}, runtime.Unavailable(err, "reading the orders failed, try again")
	}
	for i, it := range items {
		if !it.Found {
			continue
		}
		if !json.Valid(it.Value) {
			return orderevent.LookupResponse{}, fmt.Errorf("stored order %s is not JSON", keys[i])
		}
		out.Orders = append(out.Orders, it.Value)
	}
	return out, nil
}

// FindAll says of each of ids whether it is a stored order and what the
// order took (orderevent.BulkLookup in the embedded mode).
func (s *Service) FindAll(ctx context.Context, ids []string) ([]orderevent.Stored, error) {
	ans, err := s.Lookup(ctx, orderevent.LookupRequest{IDs: ids})
	if err != nil {
		return nil, err
	}
	return ans.Stored(ids)
}
