package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/runtime"
)

// Product is the stored stock of one product, in the seed's shape.
type Product struct {
	Name  string `json:"name"`
	Stock int    `json:"stock"`
}

// Item is a catalog entry: the product and its initial (and default
// restock) stock.
type Item struct {
	ID    string
	Name  string
	Stock int
}

// SeedCatalog is the seed's inventory.
var SeedCatalog = []Item{
	{ID: "product-1", Name: "Laptop", Stock: 10},
	{ID: "product-2", Name: "Mouse", Stock: 50},
	{ID: "product-3", Name: "Keyboard", Stock: 25},
}

// ParseCatalog reads "id:name:stock,id:name:stock" (the CATALOG variable).
func ParseCatalog(s string) ([]Item, error) {
	var items []Item
	for _, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		f := strings.Split(strings.TrimSpace(part), ":")
		if len(f) != 3 {
			return nil, fmt.Errorf("catalog entry %q: want id:name:stock, e.g. product-1:Laptop:10", part)
		}
		n, err := strconv.Atoi(f[2])
		if err != nil || n < 0 {
			return nil, fmt.Errorf("catalog entry %q: stock must be a whole number >= 0", part)
		}
		items = append(items, Item{ID: f[0], Name: f[1], Stock: n})
	}
	if len(items) == 0 {
		return nil, errors.New("catalog is empty: want id:name:stock,... (CATALOG)")
	}
	return items, nil
}

// Config configures a Service.
type Config struct {
	Catalog []Item
	// RestockLevel is the stock every product is topped up to by Restock;
	// 0 means each product's catalog stock.
	RestockLevel int
	// MaxAttempts bounds compare-and-swap retries per change (default 50).
	MaxAttempts int
}

// Service is the inventory function.
type Service struct {
	store   bindings.StateStore
	catalog []Item
	byID    map[string]Item
	level   int
	tries   int
	queues  sync.Map // product id -> *queue
}

// New returns the inventory function over store.
func New(store bindings.StateStore, cfg Config) (*Service, error) {
	if store == nil {
		return nil, errors.New("inventory: a state store is required")
	}
	if len(cfg.Catalog) == 0 {
		cfg.Catalog = SeedCatalog
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 50
	}
	s := &Service{store: store, catalog: cfg.Catalog, byID: map[string]Item{}, level: cfg.RestockLevel, tries: cfg.MaxAttempts}
	for _, it := range cfg.Catalog {
		if it.ID == "" {
			return nil, errors.New("inventory: catalog item without an id")
		}
		s.byID[it.ID] = it
	}
	return s, nil
}

// Key is the state key of a product's stock.
func Key(productID string) string { return "stock-" + productID }

// CheckRequest is the body of POST /check (the seed's contract).
type CheckRequest struct {
	ProductID string `json:"productId"`
	Quantity  int    `json:"quantity"`
}

// Validate implements runtime.Validator.
func (r CheckRequest) Validate() error {
	if strings.TrimSpace(r.ProductID) == "" {
		return runtime.Invalid("invalid_product_id", "productId is required")
	}
	if r.Quantity < 1 {
		return runtime.Invalid("invalid_quantity", "quantity must be a whole number of at least 1")
	}
	return nil
}

// CheckResponse is the seed's answer of POST /check.
type CheckResponse struct {
	Available      bool   `json:"available"`
	ProductName    string `json:"productName"`
	RemainingStock int    `json:"remainingStock"`
}

// ErrProductNotFound is the seed's 404 for an unknown product.
var ErrProductNotFound = runtime.NotFound("product_not_found", "Product not found")

// Check takes Quantity from the product's stock when there is enough and
// says whether it did, as the seed does; an unknown product is a 404.
func (s *Service) Check(ctx context.Context, in CheckRequest) (CheckResponse, error) {
	var out CheckResponse
	err := s.update(ctx, in.ProductID, func(p *Product) bool {
		out = CheckResponse{Available: p.Stock >= in.Quantity, ProductName: p.Name}
		if out.Available {
			p.Stock -= in.Quantity
		}
		out.RemainingStock = p.Stock
		return out.Available
	})
	return out, err
}

// ReleaseRequest gives back the stock an order took (compensation).
type ReleaseRequest struct {
	OrderID   string `json:"orderId"`
	ProductID string `json:"productId"`
	Quantity  int    `json:"quantity"`
}

// Validate implements runtime.Validator.
func (r ReleaseRequest) Validate() error {
	if strings.TrimSpace(r.OrderID) == "" {
		return runtime.Invalid("invalid_order_id", "orderId is required: a release is recorded per order so a retry gives nothing back twice")
	}
	return CheckRequest{ProductID: r.ProductID, Quantity: r.Quantity}.Validate()
}

// ReleaseResponse answers POST /release.
type ReleaseResponse struct {
	Released       bool `json:"released"` // false when this order's release was already done
	RemainingStock int  `json:"remainingStock"`
}

// Release returns Quantity to the product's stock, once per order id.
func (s *Service) Release(ctx context.Context, in ReleaseRequest) (ReleaseResponse, error) {
	if _, ok := s.byID[in.ProductID]; !ok {
		return ReleaseResponse{}, ErrProductNotFound
	}
	marker, _ := json.Marshal(in)
	switch err := s.store.Save(ctx, "released-"+in.OrderID, marker, ""); {
	case errors.Is(err, bindings.ErrConflict):
		return ReleaseResponse{Released: false}, nil
	case err != nil:
		return ReleaseResponse{}, runtime.Unavailable(err, "recording the release failed, try again")
	}
	var out ReleaseResponse
	err := s.update(ctx, in.ProductID, func(p *Product) bool {
		p.Stock += in.Quantity
		out = ReleaseResponse{Released: true, RemainingStock: p.Stock}
		return true
	})
	return out, err
}

// Inventory is the seed's GET /inventory answer: product id -> product.
type Inventory map[string]Product

// List returns every catalog product's current stock.
func (s *Service) List(ctx context.Context, _ struct{}) (Inventory, error) {
	keys := make([]string, len(s.catalog))
	for i, it := range s.catalog {
		keys[i] = Key(it.ID)
	}
	items, err := s.store.BulkGet(ctx, keys)
	if err != nil {
		return nil, runtime.Unavailable(err, "reading stock failed, try again")
	}
	out := make(Inventory, len(items))
	for i, it := range items {
		p, err := s.decode(s.catalog[i].ID, it)
		if err != nil {
			return nil, err
		}
		out[s.catalog[i].ID] = p
	}
	return out, nil
}

// Restock tops every product up to the restock level. It only raises stock,
// so running it twice in a row changes nothing the second time.
func (s *Service) Restock(ctx context.Context, _ runtime.BindingEvent[struct{}]) error {
	var errs []error
	for _, it := range s.catalog {
		target := s.level
		if target <= 0 {
			target = it.Stock
		}
		err := s.update(ctx, it.ID, func(p *Product) bool {
			if p.Stock >= target {
				return false
			}
			p.Stock = target
			return true
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("restock %s: %w", it.ID, err))
		}
	}
	if len(errs) > 0 {
		return runtime.RetryLater(errors.Join(errs...))
	}
	return nil
}

// change is one pending stock change of a product and where its result goes.
type change struct {
	ctx   context.Context
	apply func(*Product) bool
	done  chan error
}

// queue collects the changes of one product while a write is in flight.
type queue struct {
	mu      sync.Mutex
	pending []*change
	running bool
}

// update applies fn to the product's stock with compare-and-swap; fn returns
// false when nothing is to be written. Changes that arrive while a write of
// the same product is in flight are applied together in the next write (group
// commit): one read and one conditional write for the whole batch, so a hot
// product costs two sidecar calls per batch, not per order. A product missing
// from the store starts at its catalog stock.
func (s *Service) update(ctx context.Context, productID string, fn func(*Product) bool) error {
	if _, ok := s.byID[productID]; !ok {
		return ErrProductNotFound
	}
	v, _ := s.queues.LoadOrStore(productID, &queue{})
	q := v.(*queue)
	c := &change{ctx: ctx, apply: fn, done: make(chan error, 1)}
	q.mu.Lock()
	q.pending = append(q.pending, c)
	lead := !q.running
	q.running = true
	q.mu.Unlock()
	if lead {
		go s.drain(productID, q)
	}
	// Wait for the outcome even if ctx ends meanwhile: once applied, the
	// change is written or not, and the caller must know which.
	return <-c.done
}

func (s *Service) drain(productID string, q *queue) {
	for {
		q.mu.Lock()
		batch := q.pending
		q.pending = nil
		if len(batch) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		s.write(productID, batch)
	}
}

// write applies batch in order to a fresh read and writes the result once,
// retrying the whole batch on a conflict with another replica.
func (s *Service) write(productID string, batch []*change) {
	finish := func(err error) {
		for _, c := range batch {
			if c != nil {
				c.done <- err
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := Key(productID)
	for attempt := range s.tries {
		it, err := s.store.Get(ctx, key)
		if err != nil {
			finish(runtime.Unavailable(err, "reading stock of %s failed, try again", productID))
			return
		}
		p, err := s.decode(productID, it)
		if err != nil {
			finish(err)
			return
		}
		changed := false
		for i, c := range batch {
			if c == nil {
				continue
			}
			if err := c.ctx.Err(); err != nil { // gave up before its turn: not applied
				c.done <- runtime.Classify(err)
				batch[i] = nil
				continue
			}
			if c.apply(&p) {
				changed = true
			}
		}
		if !changed {
			finish(nil)
			return
		}
		next, _ := json.Marshal(p)
		err = s.store.Save(ctx, key, next, it.ETag) // ETag "" creates: two creators cannot both win
		if err == nil {
			finish(nil)
			return
		}
		if !errors.Is(err, bindings.ErrConflict) {
			finish(runtime.Unavailable(err, "writing stock of %s failed, try again", productID))
			return
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			finish(runtime.Classify(err))
			return
		}
	}
	finish(runtime.Unavailable(fmt.Errorf("%d conflicting writes in a row", s.tries), "stock of %s is busy, try again", productID))
}

func (s *Service) decode(productID string, it bindings.StateItem) (Product, error) {
	if !it.Found {
		c := s.byID[productID]
		return Product{Name: c.Name, Stock: c.Stock}, nil
	}
	var p Product
	if err := json.Unmarshal(it.Value, &p); err != nil {
		return Product{}, fmt.Errorf("stored stock of %s is corrupt (%q): %w", productID, it.Value, err)
	}
	return p, nil
}

func backoff(attempt int) time.Duration {
	d := time.Millisecond << min(attempt, 5)
	return d/2 + rand.N(d)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
