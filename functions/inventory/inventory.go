package inventory

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/functions/lease"
	"github.com/daprfn/shop/functions/orderevent"
	"github.com/daprfn/shop/functions/stock"
	"github.com/daprfn/shop/runtime"
	"github.com/daprfn/shop/runtime/batch"
	"github.com/daprfn/shop/runtime/state"
)

// Product is the stored stock of one product: the seed's shape, the holds
// of orders that took stock and are not confirmed yet, and the leases.
type Product struct {
	Name        string    `json:"name"`
	Stock       int       `json:"stock"`
	RestockedAt time.Time `json:"restockedAt,omitzero"` // Restock's last top-up
	// Holds, by order id, are taken stock whose order may still fail:
	// Confirm drops a hold once its order is stored; SweepHolds settles it
	// if nobody did, by looking the order up.
	Holds  map[string]Hold `json:"holds,omitempty"`
	Leases lease.Ledger    `json:"leases,omitempty"` // stock order-services place orders from (Lease)
}

// Hold is the stock one order took.
type Hold struct {
	Quantity int       `json:"quantity"`
	At       time.Time `json:"at"`
}

// Config configures a Service.
type Config struct {
	Catalog []Item
	// RestockLevel is what Restock tops every product up to; 0: each
	// product's catalog stock.
	RestockLevel int
	// MaxAttempts bounds the compare-and-swap attempts of one write
	// (default 50): other replicas write the product too.
	MaxAttempts int
	// Orders settles holds and leases older than HoldTTL (none without it).
	// A BulkLookup looks all a lease's orders up in one call.
	Orders orderevent.Lookup
	// HoldTTL is how old a hold or lease must be for SweepHolds to settle
	// it (default 60 s): longer than an order may take to be stored
	// (ORDER_TIMEOUT) plus a lease's life (lease.Life).
	HoldTTL time.Duration
	// RestockEvery is the least time between two top-ups of a product (0:
	// none), so that a restock triggered off schedule (by invocation of the
	// binding's route) cannot refill stock early.
	RestockEvery time.Duration
}

// Service is the inventory function.
type Service struct {
	store        bindings.StateStore
	catalog      []Item
	byID         map[string]Item
	level        int
	backoff      state.Backoff
	orders       orderevent.Lookup
	ttl          time.Duration
	restockEvery time.Duration
	now          func() time.Time
	writes       sync.Map // product id -> *batch.Group[change, struct{}]
}

// change is one change of a product's stock; false: nothing to write.
type change = func(*Product) bool

// New returns the inventory function over store.
func New(store bindings.StateStore, cfg Config) (*Service, error) {
	if store == nil {
		return nil, errors.New("inventory: a state store is required")
	}
	if len(cfg.Catalog) == 0 {
		cfg.Catalog = SeedCatalog
	}
	s := &Service{store: store, catalog: cfg.Catalog, byID: map[string]Item{}, level: cfg.RestockLevel,
		backoff: state.Backoff{Base: time.Millisecond, Max: 32 * time.Millisecond, Attempts: cmp.Or(max(cfg.MaxAttempts, 0), 50)},
		orders:  cfg.Orders, ttl: cmp.Or(max(cfg.HoldTTL, 0), time.Minute), restockEvery: cfg.RestockEvery, now: time.Now}
	for _, it := range s.catalog {
		if it.ID == "" {
			return nil, errors.New("inventory: catalog item without an id")
		}
		s.byID[it.ID] = it
	}
	return s, nil
}

// Close sends the writes queued and waits for them; the goroutines that
// wrote end. Changes after Close are still written.
func (s *Service) Close() {
	s.writes.Range(func(_, g any) bool { g.(*batch.Group[change, struct{}]).Close(); return true })
}

// Key is the state key of a product's stock.
func Key(productID string) string { return "stock-" + productID }

// update applies c to the product's stock with compare-and-swap. Changes
// that arrive while a write of the product is in flight share the next one
// (group commit): a hot product costs a read and a write per batch.
func (s *Service) update(ctx context.Context, productID string, c change) error {
	if _, ok := s.byID[productID]; !ok {
		return stock.ErrProductNotFound
	}
	g, ok := s.writes.Load(productID)
	if !ok {
		g, _ = s.writes.LoadOrStore(productID, batch.New(batch.Options{}, func(calls []*batch.Call[change, struct{}]) {
			s.write(productID, calls)
		}))
	}
	_, err := g.(*batch.Group[change, struct{}]).Do(ctx, c)
	return err
}

// write applies the changes of calls, in order, with one state.Update: on a
// conflict with another replica, all again on a fresh read. A call whose
// requester gave up before an attempt is answered with its context's error
// and left out.
func (s *Service) write(productID string, calls []*batch.Call[change, struct{}]) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := state.Update(ctx, s.store, Key(productID), func(p *Product, found bool) error {
		if !found {
			*p = s.initial(productID)
		}
		calls = slices.DeleteFunc(calls, func(c *batch.Call[change, struct{}]) bool {
			err := c.Context().Err()
			if err != nil {
				c.Answer(struct{}{}, runtime.Classify(err))
			}
			return err != nil
		})
		changed := false
		for _, c := range calls {
			changed = c.In(p) || changed
		}
		if !changed {
			return state.ErrUnchanged
		}
		return nil
	}, state.WithBackoff(s.backoff))
	if err != nil {
		err = runtime.Unavailable(err, "changing the stock of %s failed, try again", productID)
	}
	for _, c := range calls {
		c.Answer(struct{}{}, err)
	}
}

// initial is a product's stock before its first write: its catalog stock,
// which counts as a top-up (no restock before RestockEvery has passed).
func (s *Service) initial(productID string) Product {
	c := s.byID[productID]
	return Product{Name: c.Name, Stock: c.Stock, RestockedAt: s.now().UTC()}
}
