package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/functions/stock"
)

// Life is how long an order-service places orders from one lease, counted
// from when it asked for it. The inventory settles a lease nobody settled
// only once it is older than its HOLD_TTL, which must therefore exceed Life
// plus the longest an order takes to be stored.
const Life = time.Second

// TickEvery is how often a Stock retires leases past their Life and sends
// the settlements no lease request carried.
const TickEvery = 200 * time.Millisecond

// RetryAfter is how long a Stock takes stock order by order after the
// inventory refused a lease, or a lease request failed, before it asks again.
const RetryAfter = time.Second

// AbandonAfter is how long a retired lease waits for the confirmations of
// its orders. Past it, its orders failed or their outcome is unknown: the
// order-service forgets the lease and the inventory's hold sweep settles it.
const AbandonAfter = time.Minute

// callTimeout bounds one lease request.
const callTimeout = 10 * time.Second

// Leaser is the inventory's POST /lease.
type Leaser interface {
	Lease(ctx context.Context, req Request) (Answer, error)
}

// InvokeLeaser is Leaser over service invocation of the inventory app AppID.
// An inventory without leases answers 404 (a *bindings.InvokeError).
type InvokeLeaser struct {
	Invoker bindings.Invoker
	AppID   string
}

// Lease implements Leaser.
func (l InvokeLeaser) Lease(ctx context.Context, req Request) (Answer, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return Answer{}, err
	}
	out, err := l.Invoker.Invoke(ctx, l.AppID, "POST", "lease", body)
	if err != nil {
		return Answer{}, err
	}
	var ans Answer
	if err := json.Unmarshal(out, &ans); err != nil {
		return Answer{}, fmt.Errorf("inventory %s answered POST /lease with %q: %w", l.AppID, out, err)
	}
	return ans, nil
}

// Config configures a Stock.
type Config struct {
	Leaser Leaser
	// Units is the size of one lease, at most MaxQuantity.
	Units int
	// Next serves the orders no lease can: more units than a lease holds, a
	// product the inventory will not lease, an inventory without leases.
	Next stock.Stock
	Log  *slog.Logger     // nil: no logs
	Now  func() time.Time // the clock leases age by; nil: time.Now
}

// Stock is stock.Stock that places orders from leases: for each product it
// asks the inventory for a block of units once, serves the orders that fit
// in it without a sidecar hop, and settles the block once it is used up or
// Life old, with its next lease request or on its own within TickEvery.
// Orders a lease cannot serve (more units than a lease holds, a product the
// inventory will not lease because its stock is short, an inventory without
// leases such as the seed's) go to Config.Next. A product that sells fast
// enough to use up a lease within its life gets its next lease asked for
// when the current one is half used, so its orders do not wait for the
// inventory when the lease runs out.
//
// An order served from a lease is stored under the id of its slot
// (stock.Availability.OrderID), so the inventory can settle a lease whose
// order-service died by looking up the orders of its slots.
//
// Lease requests run on goroutines of their own, never under the Stock's
// lock; Close waits for them.
type Stock struct {
	leaser Leaser
	next   stock.Stock
	units  int
	log    *slog.Logger
	now    func() time.Time

	mu       sync.Mutex
	products map[string]*productLeases
	off      bool // the inventory has no POST /lease
	closed   bool

	stop chan struct{}  // closed by Close: the ticker ends
	wg   sync.WaitGroup // the ticker and every lease request in flight
}

// productLeases is the lease state of one product.
type productLeases struct {
	cur     *held
	next    *held         // granted ahead (a prefetch), not yet placing orders
	asking  chan struct{} // a lease request is in flight; closed when its answer is applied
	pause   time.Time     // no lease is asked for before
	retired []*held       // past their life, orders still in flight
	settle  []Settlement
}

// held is one granted lease as its order-service keeps it.
type held struct {
	grant     Grant
	ids       *Slots // the order ids of grant's slots
	name      string
	until     time.Time // no order is placed from it after
	remaining int
	slots     int            // slots used: the next order's slot
	used      int            // units of confirmed (stored) orders
	inflight  map[string]int // order id -> units, taken and not yet confirmed
	retiredAt time.Time
}

// NewStock returns a Stock that leases cfg.Units at a time from cfg.Leaser.
// Close settles the leases.
func NewStock(cfg Config) (*Stock, error) {
	if cfg.Leaser == nil || cfg.Next == nil {
		return nil, errors.New("lease: a Leaser and a Next stock are required")
	}
	if cfg.Units < 1 || cfg.Units > MaxQuantity {
		return nil, fmt.Errorf("lease: %d units: want 1 to %d", cfg.Units, MaxQuantity)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Stock{leaser: cfg.Leaser, next: cfg.Next, units: cfg.Units, log: cfg.Log, now: cfg.Now,
		products: map[string]*productLeases{}, stop: make(chan struct{})}
	s.wg.Go(s.run)
	return s, nil
}

// Take implements stock.Stock.
func (s *Stock) Take(ctx context.Context, orderID, productID string, qty int) (stock.Availability, error) {
	for {
		s.mu.Lock()
		if s.off || s.closed || qty > s.units {
			s.mu.Unlock()
			return s.next.Take(ctx, orderID, productID, qty)
		}
		pl := s.productLocked(productID)
		now := s.now()
		if h := s.currentLocked(pl, now, qty); h != nil {
			a := h.place(qty)
			if s.prefetchDueLocked(pl, h, now) {
				s.startAskLocked(productID, pl, true)
			}
			s.mu.Unlock()
			return a, nil
		}
		if pl.asking == nil && now.Before(pl.pause) {
			s.mu.Unlock()
			return s.next.Take(ctx, orderID, productID, qty)
		}
		if pl.asking == nil {
			s.startAskLocked(productID, pl, true)
		}
		asking := pl.asking
		s.mu.Unlock()
		select {
		case <-asking: // a lease, a refusal or a pause: look again
		case <-ctx.Done():
			return stock.Availability{}, fmt.Errorf("waiting for a stock lease: %w", ctx.Err())
		}
	}
}

// Confirm implements stock.Stock: an order placed from a lease counts as
// used; the others are Next's.
func (s *Stock) Confirm(t stock.Taken) {
	if !s.confirm(t) {
		s.next.Confirm(t)
	}
}

// confirm counts t's order as used if a lease placed it.
func (s *Stock) confirm(t stock.Taken) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	pl := s.products[t.ProductID]
	if pl == nil {
		return false
	}
	if h := pl.cur; h != nil && h.confirm(t.OrderID) {
		return true
	}
	for i, h := range pl.retired {
		if h.confirm(t.OrderID) {
			if len(h.inflight) == 0 {
				pl.settleLocked(h)
				pl.retired = append(pl.retired[:i], pl.retired[i+1:]...)
			}
			return true
		}
	}
	return false
}

// Close retires every lease and settles those whose orders are all
// confirmed; those with orders still in flight are left to the inventory's
// hold sweep. It waits for the lease requests in flight, whose grants it
// gives back. Takes after Close go to Next.
func (s *Stock) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait() // the ticker, and the requests in flight: their grants are queued to be given back
	s.tick(true)
	s.wg.Wait() // the settlements tick sent
}

// currentLocked returns pl's lease that can place an order of qty at now,
// or nil. A current lease that cannot (past its life, or too few units
// left) is retired, and the prefetched one, if any, takes its place.
func (s *Stock) currentLocked(pl *productLeases, now time.Time, qty int) *held {
	for {
		if h := pl.cur; h != nil {
			if now.Before(h.until) && h.remaining >= qty {
				return h
			}
			pl.retireLocked(now)
		}
		if pl.next == nil {
			return nil
		}
		pl.cur, pl.next = pl.next, nil
	}
}

// prefetchDueLocked reports whether to ask for pl's next lease now, while h,
// its current one, still places orders: h is half used within the first
// half of its life, so at this pace it runs out before it expires, and no
// request is in flight or paused. Orders then go on from the next lease
// without waiting for the inventory; a product that sells slower than that
// asks when its lease is used up, as it would without prefetching.
func (s *Stock) prefetchDueLocked(pl *productLeases, h *held, now time.Time) bool {
	return pl.asking == nil && pl.next == nil && !now.Before(pl.pause) &&
		2*h.remaining <= h.grant.Quantity && 2*h.until.Sub(now) > Life
}

// startAskLocked sends a lease request for productID on a goroutine of its
// own, carrying the settlements due and, with grant, a new grant; pl.asking
// is closed once its answer is applied.
func (s *Stock) startAskLocked(productID string, pl *productLeases, grant bool) {
	pl.asking = make(chan struct{})
	n := min(len(pl.settle), MaxSettlements)
	req := Request{ProductID: productID, Settle: pl.settle[:n:n]}
	pl.settle = pl.settle[n:]
	if grant {
		g := NewGrant(s.units)
		req.Grant = &g
	}
	sent := s.now()
	s.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		ans, err := s.leaser.Lease(ctx, req)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.applyLocked(pl, req, sent, ans, err)
	})
}

// applyLocked applies the answer to req, sent at sent.
func (s *Stock) applyLocked(pl *productLeases, req Request, sent time.Time, ans Answer, err error) {
	close(pl.asking)
	pl.asking = nil
	g := req.Grant
	var ie *bindings.InvokeError
	switch {
	case errors.As(err, &ie) && (ie.Status == 404 || ie.Status == 405):
		if !s.off {
			s.off = true
			s.log.Warn("the inventory has no POST /lease (the seed's inventory?): taking stock order by order", "error", err.Error())
		}
	case errors.As(err, &ie) && ie.Status >= 400 && ie.Status < 500:
		// Refused as a whole: sending it again would be refused again. The
		// inventory's hold sweep settles what it carried.
		s.log.Warn("the inventory refused a lease request; its hold sweep will settle the leases it carried", "product", req.ProductID, "settlements", len(req.Settle), "error", err.Error())
		pl.pause = sent.Add(RetryAfter)
	case err != nil:
		// It may have been applied: settling again is a no-op, and a grant
		// that was taken is given back whole, as no order used it.
		pl.settle = append(pl.settle, req.Settle...)
		if g != nil {
			pl.settle = append(pl.settle, Settlement{ID: g.ID, Used: 0})
		}
		pl.pause = sent.Add(RetryAfter)
		s.log.Warn("a lease request failed; taking stock order by order for a while", "product", req.ProductID, "error", err.Error())
	case g == nil:
	case ans.Granted && s.closed: // granted after Close: no order will use it
		pl.settle = append(pl.settle, Settlement{ID: g.ID, Used: 0})
	case ans.Granted:
		h := &held{grant: *g, ids: NewSlots(*g), name: ans.ProductName, until: sent.Add(Life), remaining: g.Quantity, inflight: map[string]int{}}
		if pl.cur == nil {
			pl.cur = h
		} else { // a prefetch: h takes over once the current lease cannot place an order
			pl.next = h
		}
	default: // refused (short stock) or an unknown product: order by order answers either
		pl.pause = sent.Add(RetryAfter)
	}
}

func (s *Stock) productLocked(productID string) *productLeases {
	pl := s.products[productID]
	if pl == nil {
		pl = &productLeases{}
		s.products[productID] = pl
	}
	return pl
}

// run ticks every TickEvery until Close.
func (s *Stock) run() {
	t := time.NewTicker(TickEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.tick(false)
		}
	}
}

// tick retires the leases past their life (every lease, with all), forgets
// retired ones whose orders never confirmed, and sends the settlements due.
func (s *Stock) tick(all bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for productID, pl := range s.products {
		if pl.asking != nil {
			continue // its request carries the settlements, or the next will
		}
		if h := pl.cur; h != nil && (all || !now.Before(h.until)) {
			pl.retireLocked(now)
		}
		if h := pl.next; h != nil && (all || !now.Before(h.until)) {
			pl.next = nil // prefetched and never used: given back whole
			pl.settleLocked(h)
		}
		kept := pl.retired[:0]
		for _, h := range pl.retired {
			if now.Sub(h.retiredAt) < AbandonAfter {
				kept = append(kept, h)
				continue
			}
			s.log.Warn("orders placed from a stock lease were never confirmed (failed, or their outcome is unknown); the inventory's hold sweep settles the lease by looking them up",
				"product", productID, "lease", h.grant.ID, "orders", len(h.inflight))
		}
		pl.retired = kept
		if len(pl.settle) > 0 {
			s.startAskLocked(productID, pl, false)
		}
	}
}

// retireLocked ends pl's current lease: no order is placed from it any more,
// and it is settled once its orders in flight are confirmed.
func (pl *productLeases) retireLocked(now time.Time) {
	h := pl.cur
	pl.cur = nil
	h.retiredAt = now
	if len(h.inflight) == 0 {
		pl.settleLocked(h)
		return
	}
	pl.retired = append(pl.retired, h)
}

// settleLocked queues the settlement of h, a retired lease whose orders are
// all confirmed: the units of its stored orders stay sold.
func (pl *productLeases) settleLocked(h *held) {
	pl.settle = append(pl.settle, Settlement{ID: h.grant.ID, Used: h.used})
}

// place gives an order of qty the next slot of h.
func (h *held) place(qty int) stock.Availability {
	id := h.ids.OrderID(h.slots)
	h.slots++
	h.remaining -= qty
	h.inflight[id] = qty
	return stock.Availability{Available: true, ProductName: h.name, Remaining: h.remaining, OrderID: id}
}

// confirm counts orderID's units as used if h placed it.
func (h *held) confirm(orderID string) bool {
	n, ok := h.inflight[orderID]
	if ok {
		delete(h.inflight, orderID)
		h.used += n
	}
	return ok
}
