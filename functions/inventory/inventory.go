package inventory

import (
	"cmp"
	"context"
	"errors"
	"strings"
	"time"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/functions/lease"
	"github.com/daprfn/shop/functions/orderevent"
	"github.com/daprfn/shop/functions/stock"
	"github.com/daprfn/shop/runtime"
	"github.com/daprfn/shop/runtime/state"
)

// Product is the stored stock of one product: the seed's shape, the holds
// of orders that took stock and are not confirmed yet, and the leases.
type Product struct {
	Name        string    `json:"name"`
	Stock       int       `json:"stock"`
	RestockedAt time.Time `json:"restockedAt,omitzero"` // Restock's last top-up
	// Holds, by order id, are stock taken for orders that may still fail:
	// Confirm drops a hold once its order is stored, SweepHolds if nobody did.
	Holds  map[string]Hold `json:"holds,omitempty"`
	Leases lease.Ledger    `json:"leases,omitempty"` // stock order-services place orders from
}

// Hold is the stock one order took.
type Hold struct {
	Quantity int       `json:"quantity"`
	At       time.Time `json:"at"`
}

// Config configures a Service.
type Config struct {
	Catalog      []Item
	RestockLevel int // what Restock tops every product up to; 0: its catalog stock
	MaxAttempts  int // compare-and-swap attempts of one write, other replicas writing too (default 50)
	// Orders settles the holds and leases older than HoldTTL (default 60 s,
	// to exceed ORDER_TIMEOUT plus lease.Life); without it SweepHolds does
	// nothing. A BulkLookup looks all the orders of a lease up in one call.
	Orders       orderevent.Lookup
	HoldTTL      time.Duration
	RestockEvery time.Duration // least time between two top-ups (0: none): an off-schedule restock refills nothing
}

// Service is the inventory function.
type Service struct {
	stock        *state.Group[Product] // by Key, with group commit
	store        bindings.StateStore
	catalog      []Item
	byID         map[string]Item
	level        int
	orders       orderevent.Lookup
	ttl          time.Duration
	restockEvery time.Duration
	now          func() time.Time
}

// New returns the inventory function over store.
func New(store bindings.StateStore, cfg Config) (*Service, error) {
	if store == nil {
		return nil, errors.New("inventory: a state store is required")
	}
	if len(cfg.Catalog) == 0 {
		cfg.Catalog = SeedCatalog
	}
	s := &Service{store: store, catalog: cfg.Catalog, byID: map[string]Item{}, level: cfg.RestockLevel,
		orders: cfg.Orders, ttl: cmp.Or(max(cfg.HoldTTL, 0), time.Minute), restockEvery: cfg.RestockEvery, now: time.Now}
	for _, it := range s.catalog {
		if it.ID == "" {
			return nil, errors.New("inventory: catalog item without an id")
		}
		s.byID[it.ID] = it
	}
	backoff := state.Backoff{Base: time.Millisecond, Max: 32 * time.Millisecond, Attempts: cmp.Or(max(cfg.MaxAttempts, 0), 50)}
	s.stock = state.NewGroup(store, func(key string) Product { return s.initial(strings.TrimPrefix(key, keyPrefix)) }, state.WithBackoff(backoff))
	return s, nil
}

// Close waits for the writes queued; changes after Close are still written.
func (s *Service) Close() { s.stock.Close() }

const keyPrefix = "stock-"

// Key is the state key of a product's stock.
func Key(productID string) string { return keyPrefix + productID }

// update applies change to the product's stock with compare-and-swap;
// change returns false when nothing is to be written. The changes that come
// while a write of the product is in flight share the next one.
func (s *Service) update(ctx context.Context, productID string, change func(*Product) bool) error {
	if _, ok := s.byID[productID]; !ok {
		return stock.ErrProductNotFound
	}
	err := s.stock.Update(ctx, Key(productID), change)
	if err != nil && ctx.Err() == nil {
		return runtime.Unavailable(err, "changing the stock of %s failed, try again", productID)
	}
	return err
}

// initial is a product's stock before its first write: its catalog stock,
// which counts as a top-up (no restock before RestockEvery has passed).
func (s *Service) initial(productID string) Product {
	c := s.byID[productID]
	return Product{Name: c.Name, Stock: c.Stock, RestockedAt: s.now().UTC()}
}
