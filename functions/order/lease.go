package order

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/functions/lease"
)

// LeaseLife is how long an order-service places orders from one lease,
// counted from when it asked for it. The inventory settles a lease nobody
// settled only once it is older than its HOLD_TTL, which must therefore
// exceed LeaseLife plus the longest an order takes to be stored.
const LeaseLife = time.Second

// leaseTick is how often LeaseStock retires leases past LeaseLife and sends
// the settlements no lease request carried.
const leaseTick = 200 * time.Millisecond

// leaseRetry is how long LeaseStock takes stock order by order after the
// inventory refused a lease, or a lease request failed, before it asks again.
const leaseRetry = time.Second

// leaseAbandon is how long a retired lease waits for the confirmations of
// its orders. Past it, its orders failed or their outcome is unknown: the
// order-service forgets the lease and the inventory's hold sweep settles it.
const leaseAbandon = time.Minute

// LeaseStock is Stock that places orders from leases of stock (package
// lease): for each product it asks the inventory for a block of units once,
// serves the orders that fit in it without a sidecar hop, and settles the
// block once it is used up or LeaseLife old, with its next lease request or
// on its own within leaseTick. Orders a lease cannot serve (more units than
// a lease holds, a product the inventory will not lease because its stock
// is short, an inventory without leases such as the seed's) go to next.
// A product that sells fast enough to use up a lease within its life gets
// its next lease asked for when the current one is half used, so its orders
// do not wait for the inventory when the lease runs out.
//
// An order served from a lease is stored under the id of its slot
// (Availability.OrderID), so the inventory can settle a lease whose
// order-service died by looking up the orders of its slots.
type LeaseStock struct {
	leaser Leaser
	next   Stock
	units  int
	log    *slog.Logger
	now    func() time.Time

	mu       sync.Mutex
	products map[string]*productLeases
	off      bool // the inventory has no POST /lease
	closed   bool

	stop chan struct{}
	done chan struct{}
}

// productLeases is the lease state of one product.
type productLeases struct {
	cur     *heldLease
	next    *heldLease    // granted ahead (a prefetch), not yet placing orders
	asking  chan struct{} // a lease request is in flight; closed when it ends
	pause   time.Time     // no lease is asked for before
	retired []*heldLease  // past their life, orders still in flight
	settle  []lease.Settlement
}

// heldLease is one granted lease as its order-service keeps it.
type heldLease struct {
	grant     lease.Grant
	ids       *lease.Slots // the order ids of grant's slots
	name      string
	until     time.Time // no order is placed from it after
	remaining int
	slots     int            // slots used: the next order's slot
	used      int            // units of confirmed (stored) orders
	inflight  map[string]int // order id -> units, taken and not yet confirmed
	retiredAt time.Time
}

// Leaser is the inventory's POST /lease.
type Leaser interface {
	Lease(ctx context.Context, req lease.Request) (lease.Answer, error)
}

// InvokeLeaser is Leaser over service invocation of the inventory app AppID.
// An inventory without leases answers 404 (a *bindings.InvokeError).
type InvokeLeaser struct {
	Invoker bindings.Invoker
	AppID   string
}

// Lease implements Leaser.
func (l InvokeLeaser) Lease(ctx context.Context, req lease.Request) (lease.Answer, error) {
	body, _ := json.Marshal(req)
	out, err := l.Invoker.Invoke(ctx, l.AppID, "POST", "lease", body)
	if err != nil {
		return lease.Answer{}, err
	}
	var ans lease.Answer
	if err := json.Unmarshal(out, &ans); err != nil {
		return lease.Answer{}, fmt.Errorf("inventory %s answered POST /lease with %q: %w", l.AppID, out, err)
	}
	return ans, nil
}

// NewLeaseStock returns a Stock that leases blocks of units at a time from
// leaser; next serves the orders a lease cannot. Close settles the leases.
func NewLeaseStock(leaser Leaser, units int, next Stock, log *slog.Logger) *LeaseStock {
	return newLeaseStock(leaser, units, next, log, time.Now)
}

func newLeaseStock(leaser Leaser, units int, next Stock, log *slog.Logger, now func() time.Time) *LeaseStock {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &LeaseStock{leaser: leaser, next: next, units: min(units, lease.MaxQuantity), log: log, now: now,
		products: map[string]*productLeases{}, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

// Take implements Stock.
func (s *LeaseStock) Take(ctx context.Context, orderID, productID string, qty int) (Availability, error) {
	for {
		s.mu.Lock()
		if s.off || s.closed || qty > s.units {
			s.mu.Unlock()
			return s.next.Take(ctx, orderID, productID, qty)
		}
		pl := s.productLocked(productID)
		now := s.now()
		if h := s.currentLocked(pl, now, qty); h != nil {
			id := h.ids.OrderID(h.slots)
			h.slots++
			h.remaining -= qty
			h.inflight[id] = qty
			a := Availability{Available: true, ProductName: h.name, Remaining: h.remaining, OrderID: id}
			if s.prefetchDueLocked(pl, h, now) {
				g := lease.NewGrant(s.units)
				req, sent := s.beginAskLocked(productID, pl, &g)
				go func() {
					ans, err := s.send(req)
					s.mu.Lock()
					defer s.mu.Unlock()
					s.endAskLocked(pl, req, sent, ans, err)
				}()
			}
			s.mu.Unlock()
			return a, nil
		}
		if ch := pl.asking; ch != nil {
			s.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return Availability{}, fmt.Errorf("waiting for a stock lease: %w", ctx.Err())
			}
		}
		if now.Before(pl.pause) {
			s.mu.Unlock()
			return s.next.Take(ctx, orderID, productID, qty)
		}
		g := lease.NewGrant(s.units)
		s.askLocked(productID, pl, &g)
		s.mu.Unlock()
	}
}

// currentLocked returns pl's lease that can place an order of qty at now,
// or nil. A current lease that cannot (past its life, or too few units
// left) is retired, and the prefetched one, if any, takes its place.
func (s *LeaseStock) currentLocked(pl *productLeases, now time.Time, qty int) *heldLease {
	for {
		if h := pl.cur; h != nil {
			if now.Before(h.until) && h.remaining >= qty {
				return h
			}
			s.retireLocked(pl, now)
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
func (s *LeaseStock) prefetchDueLocked(pl *productLeases, h *heldLease, now time.Time) bool {
	return pl.asking == nil && pl.next == nil && !now.Before(pl.pause) &&
		2*h.remaining <= h.grant.Quantity && 2*h.until.Sub(now) > LeaseLife
}

// askLocked sends one lease request for productID with the settlements
// due, and a grant when g is not nil; s.mu is held on entry and on return,
// and released during the call.
func (s *LeaseStock) askLocked(productID string, pl *productLeases, g *lease.Grant) {
	req, sent := s.beginAskLocked(productID, pl, g)
	s.mu.Unlock()
	ans, err := s.send(req)
	s.mu.Lock()
	s.endAskLocked(pl, req, sent, ans, err)
}

// beginAskLocked marks a lease request for productID in flight and returns
// it, carrying the settlements due and g when g is not nil, with the time
// it is sent. endAskLocked must follow, with s.mu held.
func (s *LeaseStock) beginAskLocked(productID string, pl *productLeases, g *lease.Grant) (lease.Request, time.Time) {
	pl.asking = make(chan struct{})
	settle := pl.settle[:min(len(pl.settle), lease.MaxSettlements):min(len(pl.settle), lease.MaxSettlements)]
	pl.settle = pl.settle[len(settle):]
	return lease.Request{ProductID: productID, Grant: g, Settle: settle}, s.now()
}

func (s *LeaseStock) send(req lease.Request) (lease.Answer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), reserveTimeout)
	defer cancel()
	return s.leaser.Lease(ctx, req)
}

// endAskLocked applies the answer to req, sent by beginAskLocked at sent.
func (s *LeaseStock) endAskLocked(pl *productLeases, req lease.Request, sent time.Time, ans lease.Answer, err error) {
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
		pl.pause = sent.Add(leaseRetry)
	case err != nil:
		// It may have been applied: settling again is a no-op, and a grant
		// that was taken is given back whole, as no order used it.
		pl.settle = append(pl.settle, req.Settle...)
		if g != nil {
			pl.settle = append(pl.settle, lease.Settlement{ID: g.ID, Used: 0})
		}
		pl.pause = sent.Add(leaseRetry)
		s.log.Warn("a lease request failed; taking stock order by order for a while", "product", req.ProductID, "error", err.Error())
	case g == nil:
	case ans.Granted && s.closed: // granted after Close: no order will use it
		pl.settle = append(pl.settle, lease.Settlement{ID: g.ID, Used: 0})
	case ans.Granted:
		h := &heldLease{grant: *g, ids: lease.NewSlots(*g), name: ans.ProductName, until: sent.Add(LeaseLife), remaining: g.Quantity, inflight: map[string]int{}}
		if pl.cur == nil {
			pl.cur = h
		} else { // a prefetch: h takes over once the current lease cannot place an order
			pl.next = h
		}
	default: // refused (short stock) or an unknown product: order by order answers either
		pl.pause = sent.Add(leaseRetry)
	}
}

func (s *LeaseStock) productLocked(productID string) *productLeases {
	pl := s.products[productID]
	if pl == nil {
		pl = &productLeases{}
		s.products[productID] = pl
	}
	return pl
}

// retireLocked ends pl's current lease: no order is placed from it any more,
// and it is settled once its orders in flight are confirmed.
func (s *LeaseStock) retireLocked(pl *productLeases, now time.Time) {
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
func (pl *productLeases) settleLocked(h *heldLease) {
	pl.settle = append(pl.settle, lease.Settlement{ID: h.grant.ID, Used: h.used})
}

// Confirm implements Stock: an order placed from a lease counts as used.
func (s *LeaseStock) Confirm(t Taken) {
	s.mu.Lock()
	if pl := s.products[t.ProductID]; pl != nil {
		if h := pl.cur; h != nil && h.confirm(t.OrderID) {
			s.mu.Unlock()
			return
		}
		for i, h := range pl.retired {
			if h.confirm(t.OrderID) {
				if len(h.inflight) == 0 {
					pl.settleLocked(h)
					pl.retired = append(pl.retired[:i], pl.retired[i+1:]...)
				}
				s.mu.Unlock()
				return
			}
		}
	}
	s.mu.Unlock()
	s.next.Confirm(t)
}

func (h *heldLease) confirm(orderID string) bool {
	n, ok := h.inflight[orderID]
	if ok {
		delete(h.inflight, orderID)
		h.used += n
	}
	return ok
}

// run retires leases past their life, forgets retired ones whose orders
// never confirmed, and sends the settlements due, every leaseTick.
func (s *LeaseStock) run() {
	defer close(s.done)
	t := time.NewTicker(leaseTick)
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

// tick does one round of run's work; with all it retires every lease.
func (s *LeaseStock) tick(all bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	ids := make([]string, 0, len(s.products))
	for id := range s.products {
		ids = append(ids, id) // askLocked lets Take add products meanwhile
	}
	for _, productID := range ids {
		pl := s.products[productID]
		if pl.asking != nil {
			continue // its request carries the settlements, or the next will
		}
		if h := pl.cur; h != nil && (all || !now.Before(h.until)) {
			s.retireLocked(pl, now)
		}
		if h := pl.next; h != nil && (all || !now.Before(h.until)) {
			pl.next = nil // prefetched and never used: given back whole
			pl.settleLocked(h)
		}
		kept := pl.retired[:0]
		for _, h := range pl.retired {
			if now.Sub(h.retiredAt) < leaseAbandon {
				kept = append(kept, h)
				continue
			}
			s.log.Warn("orders placed from a stock lease were never confirmed (failed, or their outcome is unknown); the inventory's hold sweep settles the lease by looking them up",
				"product", productID, "lease", h.grant.ID, "orders", len(h.inflight))
		}
		pl.retired = kept
		if len(pl.settle) > 0 {
			s.askLocked(productID, pl, nil)
		}
	}
}

// Close retires every lease and settles those whose orders are all
// confirmed; those with orders still in flight are left to the inventory's
// hold sweep. Takes after Close go to next.
func (s *LeaseStock) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	// Lease requests still in flight settle their grants below.
	for deadline := time.Now().Add(reserveTimeout); s.asking() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	s.tick(true)
}

func (s *LeaseStock) asking() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, pl := range s.products {
		if pl.asking != nil {
			return true
		}
	}
	return false
}
