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
	"github.com/daprfn/shop/functions/orderevent"
	"github.com/daprfn/shop/internal/workers"
	"github.com/daprfn/shop/runtime"
)

// Product is the stored stock of one product: the seed's shape plus the
// holds of orders that took stock and are not yet confirmed.
type Product struct {
	Name  string `json:"name"`
	Stock int    `json:"stock"`
	// RestockedAt is when Restock last topped the product up.
	RestockedAt time.Time `json:"restockedAt,omitzero"`
	// Holds are keyed by order id. A hold is taken stock whose order may
	// still fail: Confirm drops it once the order is stored, and SweepHolds
	// settles the ones nobody confirmed by looking their order up.
	Holds map[string]Hold `json:"holds,omitempty"`
	// Leases are keyed by lease id: stock granted to an order-service that
	// places orders from it on its own (see Lease), until it is settled.
	Leases map[string]Lease `json:"leases,omitempty"`
}

// Hold is the stock one order took.
type Hold struct {
	Quantity int       `json:"quantity"`
	At       time.Time `json:"at"`
}

// OrderLookup finds a stored order: the truth a hold or a lease whose
// order-service went silent is settled by.
type OrderLookup = orderevent.Lookup

// StoredOrder is what the order function says of an order id.
type StoredOrder = orderevent.Stored

// OrderLookupFunc is an OrderLookup from a function.
type OrderLookupFunc = orderevent.LookupFunc

// InvokeOrders is OrderLookup over service invocation of the order app:
// GET /orders/{id} answering 200 with the order, or 404.
type InvokeOrders = orderevent.InvokeLookup

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
	// Orders settles holds older than HoldTTL; without it SweepHolds is a
	// no-op and unconfirmed holds stay taken.
	Orders OrderLookup
	// HoldTTL is how old an unconfirmed hold must be before SweepHolds asks
	// whether its order exists, and an unsettled lease before SweepHolds
	// looks its orders up (default 60 s). It must be longer than an order
	// takes to be stored (order.CreateTimeout) plus the time an order-service
	// serves orders from one lease (order.LeaseLife).
	HoldTTL time.Duration
	// RestockEvery is the least time between two top-ups of a product: a
	// restock sooner after the last is ignored, so that a trigger from
	// anywhere but the schedule (the binding's route is reachable by
	// service invocation too) cannot refill stock early. 0 for none.
	RestockEvery time.Duration
}

// Service is the inventory function.
type Service struct {
	store        bindings.StateStore
	catalog      []Item
	byID         map[string]Item
	level        int
	tries        int
	orders       OrderLookup
	ttl          time.Duration
	restockEvery time.Duration
	now          func() time.Time
	queues       sync.Map // product id -> *queue
	drains       *workers.Pool
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
	if cfg.HoldTTL <= 0 {
		cfg.HoldTTL = time.Minute
	}
	s := &Service{store: store, catalog: cfg.Catalog, byID: map[string]Item{}, level: cfg.RestockLevel, tries: cfg.MaxAttempts,
		orders: cfg.Orders, ttl: cfg.HoldTTL, restockEvery: cfg.RestockEvery, now: time.Now, drains: workers.New(0)}
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

// CheckRequest is the body of POST /check: the seed's contract plus an
// optional order id. The stock taken is held for the order until it is
// confirmed or settled, and asking again for the same order takes nothing
// twice. A check without an order id (the seed's order-service sends none)
// is held under an id of its own, which no order can confirm: the hold
// sweep gives it back after the hold's TTL.
type CheckRequest struct {
	ProductID string `json:"productId"`
	Quantity  int    `json:"quantity"`
	OrderID   string `json:"orderId,omitempty"`
}

// MaxQuantity is the largest quantity one check may take.
const MaxQuantity = 1_000_000

// Validate implements runtime.Validator.
func (r CheckRequest) Validate() error {
	if err := validProductID(r.ProductID); err != nil {
		return err
	}
	if r.Quantity < 1 || r.Quantity > MaxQuantity {
		return runtime.Invalid("invalid_quantity", "quantity must be a whole number from 1 to %d", MaxQuantity)
	}
	if strings.HasPrefix(r.OrderID, UnclaimedCheckPrefix) {
		return runtime.Invalid("invalid_order_id", "orderId may not start with %q: the inventory names checks without an order so", UnclaimedCheckPrefix)
	}
	if r.OrderID != "" {
		return validOrderID(r.OrderID)
	}
	return nil
}

func validProductID(id string) error {
	if strings.TrimSpace(id) == "" {
		return runtime.Invalid("invalid_product_id", "productId is required")
	}
	if len(id) > 100 {
		return runtime.Invalid("invalid_product_id", "productId must be at most 100 characters")
	}
	return nil
}

// validOrderID accepts ids of letters, digits, '-', '_' and '.', as the
// order-service makes them ("order-" and hex), up to 200 characters.
func validOrderID(id string) error {
	if !runtime.SafeID(id) {
		return runtime.Invalid("invalid_order_id", "orderId must be 1 to 200 letters, digits, '-', '_' or '.', not starting with '.'")
	}
	return nil
}

// CheckResponse is the seed's answer of POST /check.
type CheckResponse struct {
	Available      bool   `json:"available"`
	ProductName    string `json:"productName"`
	RemainingStock int    `json:"remainingStock"`
}

// UnclaimedCheckPrefix starts the id a check without an order id is held
// under. No order has such an id, so the hold sweep gives the stock back
// once the hold is older than the TTL, without asking the order function.
const UnclaimedCheckPrefix = "check-"

// UnclaimedCheckPeriod is how long the checks without an order of one
// product share one hold: it is given back whole, HOLD_TTL after its first.
const UnclaimedCheckPeriod = 15 * time.Second

// ErrProductNotFound is the seed's 404 for an unknown product.
var ErrProductNotFound = runtime.NotFound("product_not_found", "Product not found")

// Check takes Quantity from the product's stock when there is enough and
// says whether it did, as the seed does; an unknown product is a 404. The
// taken stock is held for the order, and a repeated check of the same order
// answers as the first did without taking more. A check without an order id
// is held as an unclaimed check (UnclaimedCheckPrefix), so that a caller who
// only ever checks, from the public sidecar or a swapped-in seed
// order-service, takes stock for HOLD_TTL at most, not for good.
func (s *Service) Check(ctx context.Context, in CheckRequest) (CheckResponse, error) {
	if in.OrderID == "" {
		// One hold per product and period: checks without an order add up
		// in it, so however many come, the product's record keeps a few.
		in.OrderID = UnclaimedCheckPrefix + strconv.FormatInt(s.now().Unix()/int64(UnclaimedCheckPeriod/time.Second), 36)
	}
	var out CheckResponse
	err := s.update(ctx, in.ProductID, func(p *Product) bool {
		var took bool
		out, took = s.take(p, in)
		return took
	})
	return out, err
}

// take applies one check to p: the stock is taken, and held for the order
// when there is one, if there is enough; a repeated order takes nothing.
// took tells whether p changed.
func (s *Service) take(p *Product, in CheckRequest) (out CheckResponse, took bool) {
	out = CheckResponse{ProductName: p.Name}
	unclaimed := strings.HasPrefix(in.OrderID, UnclaimedCheckPrefix)
	if _, held := p.Holds[in.OrderID]; held && in.OrderID != "" && !unclaimed {
		out.Available, out.RemainingStock = true, p.Stock
		return out, false
	}
	out.Available = p.Stock >= in.Quantity
	if out.Available {
		p.Stock -= in.Quantity
		if in.OrderID != "" {
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
	}
	out.RemainingStock = p.Stock
	return out, out.Available
}

// ReserveRequest is the body of POST /reserve: the checks of several
// orders in one call, each with its order id. The order-service sends the
// orders that arrive while its previous call is in flight, so a busy shop
// pays one sidecar hop for many orders. Confirm carries the confirmations of
// orders stored since (as POST /confirm does), applied in the same write as
// the takes of their product, so a hold lasts about one call and a product's
// record stays small however busy the shop is.
type ReserveRequest struct {
	Orders  []CheckRequest `json:"orders"`
	Confirm []Confirmation `json:"confirm,omitempty"`
}

// MaxReservations bounds one POST /reserve.
const MaxReservations = 1000

// Validate implements runtime.Validator.
func (r ReserveRequest) Validate() error {
	if len(r.Orders) == 0 || len(r.Orders) > MaxReservations {
		return runtime.Invalid("invalid_reservations", "orders must list 1 to %d {orderId, productId, quantity}", MaxReservations)
	}
	for _, c := range r.Orders {
		if c.OrderID == "" {
			return runtime.Invalid("invalid_order_id", "every reservation needs its orderId")
		}
		if err := c.Validate(); err != nil {
			return err
		}
	}
	if len(r.Confirm) > MaxConfirmations {
		return runtime.Invalid("invalid_confirmations", "confirm must list at most %d {orderId, productId}", MaxConfirmations)
	}
	return validConfirmations(r.Confirm)
}

// Reservation is the answer to one order of POST /reserve: /check's answer,
// or NotFound for an unknown product.
type Reservation struct {
	OrderID string `json:"orderId"`
	CheckResponse
	NotFound bool `json:"notFound,omitempty"`
}

// ReserveResponse answers POST /reserve, one reservation per order, in the
// request's order, and how many of the carried confirmations dropped a hold.
type ReserveResponse struct {
	Orders    []Reservation `json:"orders"`
	Confirmed int           `json:"confirmed"`
}

// Reserve confirms the carried confirmations and checks every order of in as
// Check does, with one write per product. It fails as a whole only when the
// stock cannot be read or written; an unknown product fails its own orders
// only, and confirmations of an unknown product are ignored.
func (s *Service) Reserve(ctx context.Context, in ReserveRequest) (ReserveResponse, error) {
	out := ReserveResponse{Orders: make([]Reservation, len(in.Orders))}
	takes := map[string][]int{}
	var products []string
	seen := func(product string) {
		if _, ok := takes[product]; !ok {
			takes[product] = nil
			products = append(products, product)
		}
	}
	for i, c := range in.Orders {
		out.Orders[i].OrderID = c.OrderID
		if _, ok := s.byID[c.ProductID]; !ok {
			out.Orders[i].NotFound = true
			continue
		}
		seen(c.ProductID)
		takes[c.ProductID] = append(takes[c.ProductID], i)
	}
	confirms := map[string][]string{}
	for _, c := range in.Confirm {
		if _, ok := s.byID[c.ProductID]; ok {
			seen(c.ProductID)
			confirms[c.ProductID] = append(confirms[c.ProductID], c.OrderID)
		}
	}
	for _, product := range products {
		idx, ids := takes[product], confirms[product]
		n := 0
		err := s.update(ctx, product, func(p *Product) bool {
			n = dropHolds(p, ids)
			changed := n > 0
			for _, i := range idx {
				r, took := s.take(p, in.Orders[i])
				out.Orders[i].CheckResponse = r
				changed = changed || took
			}
			return changed
		})
		if err != nil {
			return ReserveResponse{}, err
		}
		out.Confirmed += n
	}
	return out, nil
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

// ConfirmRequest is the body of POST /confirm: orders that were stored, so
// their holds become final.
type ConfirmRequest struct {
	Orders []Confirmation `json:"orders"`
}

// Confirmation names one stored order and the product it holds.
type Confirmation struct {
	OrderID   string `json:"orderId"`
	ProductID string `json:"productId"`
}

// MaxConfirmations bounds one POST /confirm.
const MaxConfirmations = 1000

// Validate implements runtime.Validator.
func (r ConfirmRequest) Validate() error {
	if len(r.Orders) == 0 || len(r.Orders) > MaxConfirmations {
		return runtime.Invalid("invalid_confirmations", "orders must list 1 to %d {orderId, productId}", MaxConfirmations)
	}
	return validConfirmations(r.Orders)
}

func validConfirmations(cs []Confirmation) error {
	for _, c := range cs {
		if err := validOrderID(c.OrderID); err != nil {
			return err
		}
		if err := validProductID(c.ProductID); err != nil {
			return err
		}
	}
	return nil
}

// ConfirmResponse answers POST /confirm.
type ConfirmResponse struct {
	Confirmed int `json:"confirmed"` // holds dropped; the others were settled before
}

// Confirm makes the holds of stored orders final: one write per product.
func (s *Service) Confirm(ctx context.Context, in ConfirmRequest) (ConfirmResponse, error) {
	byProduct := map[string][]string{}
	for _, c := range in.Orders {
		byProduct[c.ProductID] = append(byProduct[c.ProductID], c.OrderID)
	}
	var out ConfirmResponse
	var errs []error
	for product, ids := range byProduct {
		n := 0
		err := s.update(ctx, product, func(p *Product) bool {
			n = dropHolds(p, ids)
			return n > 0
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out.Confirmed += n
	}
	if len(errs) > 0 {
		return out, errors.Join(errs...)
	}
	return out, nil
}

// SweepHolds is a cron step: it settles holds older than HoldTTL, whose
// order-service never confirmed (its commit failed, it died, or lost its
// sidecar, between taking stock and answering). A hold whose order was
// stored is confirmed; one whose order does not exist is given back. A hold
// whose order cannot be looked up stays for the next run. Leases older than
// HoldTTL, which their order-service never settled, are settled the same
// way: the orders of every slot are looked up (see package lease).
func (s *Service) SweepHolds(ctx context.Context, _ runtime.BindingEvent[struct{}]) error {
	if s.orders == nil {
		return nil
	}
	items, err := s.readCatalog(ctx)
	if err != nil {
		return runtime.RetryLater(fmt.Errorf("read stock: %w", err))
	}
	cutoff := s.now().Add(-s.ttl)
	var errs []error
	for i, it := range items {
		p, err := s.decode(s.catalog[i].ID, it)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		product := s.catalog[i].ID
		exists := map[string]bool{}
		for id, h := range p.Holds {
			if h.At.After(cutoff) {
				continue
			}
			if strings.HasPrefix(id, UnclaimedCheckPrefix) {
				exists[id] = false
				continue
			}
			o, err := s.orders.LookupOrder(ctx, id)
			if err != nil {
				errs = append(errs, fmt.Errorf("look up order %s: %w", id, err))
				continue
			}
			exists[id] = o.Found
		}
		used := map[string]int{}
		for id, l := range p.Leases {
			if l.At.After(cutoff) {
				continue
			}
			n, err := s.leaseUse(ctx, product, id, l)
			if err != nil {
				errs = append(errs, fmt.Errorf("settle lease %s: %w", id, err))
				continue
			}
			used[id] = n
		}
		if len(exists) == 0 && len(used) == 0 {
			continue
		}
		err = s.update(ctx, product, func(p *Product) bool {
			changed := false
			for id, stored := range exists {
				h, ok := p.Holds[id]
				if !ok {
					continue // settled meanwhile
				}
				delete(p.Holds, id)
				if !stored {
					p.Stock += h.Quantity
				}
				changed = true
			}
			for id, n := range used {
				if settleLease(p, id, n) {
					changed = true
				}
			}
			return changed
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return runtime.RetryLater(errors.Join(errs...))
	}
	return nil
}

// readCatalog reads every catalog product's stored record, in catalog order.
func (s *Service) readCatalog(ctx context.Context) ([]bindings.StateItem, error) {
	keys := make([]string, len(s.catalog))
	for i, it := range s.catalog {
		keys[i] = Key(it.ID)
	}
	return s.store.BulkGet(ctx, keys)
}

// Listed is one product of GET /inventory, in the seed's shape.
type Listed struct {
	Name  string `json:"name"`
	Stock int    `json:"stock"`
}

// Inventory is the seed's GET /inventory answer: product id -> product.
type Inventory map[string]Listed

// List returns every catalog product's current stock.
func (s *Service) List(ctx context.Context, _ struct{}) (Inventory, error) {
	items, err := s.readCatalog(ctx)
	if err != nil {
		return nil, runtime.Unavailable(err, "reading stock failed, try again")
	}
	out := make(Inventory, len(items))
	for i, it := range items {
		p, err := s.decode(s.catalog[i].ID, it)
		if err != nil {
			return nil, err
		}
		out[s.catalog[i].ID] = Listed{Name: p.Name, Stock: p.Stock}
	}
	return out, nil
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
			// Leased units are the order-services' until settled, when
			// what their orders did not take comes back.
			leased := 0
			for _, l := range p.Leases {
				leased += l.Quantity
			}
			if p.Stock+leased >= target {
				return false
			}
			if s.restockEvery > 0 && s.now().Sub(p.RestockedAt) < s.restockEvery {
				return false // topped up lately: the next scheduled restock will
			}
			p.Stock = target - leased
			p.RestockedAt = s.now().UTC()
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
		s.drains.Go(func() { s.drain(productID, q) })
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
		// Its catalog stock counts as a top-up: no restock before
		// RestockEvery has passed.
		return Product{Name: c.Name, Stock: c.Stock, RestockedAt: s.now().UTC()}, nil
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
