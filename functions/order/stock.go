package order

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/runtime"
)

// InvokeStock is Stock over service invocation of the inventory app. Takes
// that arrive while a call is in flight go together in the next call, to
// POST /reserve, so a busy order-service pays one sidecar hop for many
// orders; an idle one sends each take at once. Confirmations ride along with
// the next /reserve, so a busy shop's holds last about one call and cost no
// call of their own; the ones no /reserve carried within ConfirmAfter go in a
// POST /confirm. Against an inventory without /reserve (the seed's) it falls
// back to the seed's POST /check, one order per call.
type InvokeStock struct {
	invoker bindings.Invoker
	appID   string
	log     *slog.Logger

	perOrder atomic.Bool // the inventory has no /reserve
	noCarry  atomic.Bool // the inventory's /reserve ignores confirmations
	noHolds  atomic.Bool // the last /confirm got 404 (the seed's inventory): logged when it starts
	takes    *groupCommit[checkBody, Availability]
	confirms *carryQueue[Taken]
}

// ConfirmAfter is how long a confirmation waits for a /reserve to carry it
// before it goes in a POST /confirm of its own.
const ConfirmAfter = 100 * time.Millisecond

// maxConfirm bounds the confirmations of one call (the inventory's
// MaxConfirmations).
const maxConfirm = 1000

// NewInvokeStock returns the Stock of the inventory app appID. Close sends
// the confirmations still queued.
func NewInvokeStock(invoker bindings.Invoker, appID string, log *slog.Logger) *InvokeStock {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &InvokeStock{invoker: invoker, appID: appID, log: log}
	s.takes = newGroupCommit(maxReserve, s.reserve)
	s.confirms = newCarryQueue(ConfirmAfter, maxConfirm, s.confirmBatch)
	return s
}

// Close sends the confirmations still queued and stops their queue.
func (s *InvokeStock) Close() { s.confirms.close() }

type checkBody struct {
	OrderID   string `json:"orderId,omitempty"`
	ProductID string `json:"productId"`
	Quantity  int    `json:"quantity,omitempty"`
}

type checkAnswer struct {
	Available      bool   `json:"available"`
	ProductName    string `json:"productName"`
	RemainingStock int    `json:"remainingStock"`
}

type reservation struct {
	OrderID string `json:"orderId"`
	checkAnswer
	NotFound bool `json:"notFound"`
}

// maxReserve bounds one POST /reserve (the inventory's MaxReservations).
const maxReserve = 1000

// reserveTimeout bounds one POST /reserve: takers wait no longer than their
// own deadline, and a call still running after they left only delays the
// next batch this long.
const reserveTimeout = 10 * time.Second

// Take implements Stock.
func (s *InvokeStock) Take(ctx context.Context, orderID, productID string, qty int) (Availability, error) {
	body := checkBody{OrderID: orderID, ProductID: productID, Quantity: qty}
	if s.perOrder.Load() {
		return s.check(ctx, body)
	}
	a, err := s.takes.do(ctx, body)
	if err != nil && errors.Is(err, ctx.Err()) {
		// The take may still happen: its hold is then settled by the
		// inventory's sweep, which finds no order under orderID.
		return Availability{}, fmt.Errorf("waiting for the inventory: %w", err)
	}
	return a, err
}

// reserve sends a batch of takes in one POST /reserve, with the queued
// confirmations.
func (s *InvokeStock) reserve(batch []*entry[checkBody, Availability]) {
	req := struct {
		Orders  []checkBody `json:"orders"`
		Confirm []Taken     `json:"confirm,omitempty"`
	}{Orders: make([]checkBody, len(batch))}
	for i, e := range batch {
		req.Orders[i] = e.in
	}
	if !s.noCarry.Load() {
		req.Confirm = s.confirms.take(maxConfirm)
	}
	body, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(context.Background(), reserveTimeout)
	defer cancel()
	out, err := s.invoker.Invoke(ctx, s.appID, "POST", "reserve", body)
	var answer struct {
		Orders    []reservation `json:"orders"`
		Confirmed *int          `json:"confirmed"`
	}
	if err == nil {
		if e := json.Unmarshal(out, &answer); e != nil || len(answer.Orders) != len(batch) {
			err = fmt.Errorf("inventory %s answered /reserve of %d orders with %q", s.appID, len(batch), out)
		}
	}
	s.carried(req.Confirm, err, answer.Confirmed != nil)
	var ie *bindings.InvokeError
	if errors.As(err, &ie) && (ie.Status == 404 || ie.Status == 405) {
		if !s.perOrder.Swap(true) {
			s.log.Warn("the inventory has no POST /reserve (the seed's inventory?): checking stock one order per call", "inventory", s.appID)
		}
		for _, e := range batch {
			go func() { e.answer(s.check(e.ctx, e.in)) }()
		}
		return
	}
	for i, e := range batch {
		switch r := answer.Orders; {
		case err != nil:
			e.answer(Availability{}, err)
		case r[i].OrderID != e.in.OrderID:
			e.answer(Availability{}, fmt.Errorf("inventory %s answered order %s in the place of %s", s.appID, r[i].OrderID, e.in.OrderID))
		case r[i].NotFound:
			e.answer(Availability{}, productNotFound(nil))
		default:
			e.answer(r[i].availability(), nil)
		}
	}
}

// carried settles the confirmations a /reserve carried. They were applied
// when it answered with its count of them. They go back in the queue when the
// call failed (confirming twice drops nothing twice) or when the inventory
// ignored them (one from before they rode along: from then on they go in
// /confirm calls). When the inventory refused the call they are dropped, as
// sending them again would be refused again: the hold sweep settles them.
func (s *InvokeStock) carried(confirms []Taken, err error, counted bool) {
	if len(confirms) == 0 {
		return
	}
	var ie *bindings.InvokeError
	switch {
	case err == nil && counted:
	case err == nil:
		if !s.noCarry.Swap(true) {
			s.log.Warn("the inventory ignores confirmations sent with POST /reserve (an older version?): confirming in POST /confirm calls", "inventory", s.appID)
		}
		s.confirms.restore(confirms)
	case errors.As(err, &ie) && ie.Status >= 400 && ie.Status < 500 && ie.Status != 404 && ie.Status != 405:
		s.log.Warn("the inventory refused a POST /reserve carrying confirmations; the inventory's hold sweep will settle them", "orders", len(confirms), "error", err.Error())
	default:
		s.confirms.restore(confirms)
	}
}

func (a checkAnswer) availability() Availability {
	return Availability{Available: a.Available, ProductName: a.ProductName, Remaining: a.RemainingStock}
}

// check is the seed's POST /check for one order.
func (s *InvokeStock) check(ctx context.Context, body checkBody) (Availability, error) {
	b, _ := json.Marshal(body)
	out, err := s.invoker.Invoke(ctx, s.appID, "POST", "check", b)
	if err != nil {
		return Availability{}, invokeError(err)
	}
	var a checkAnswer
	if err := json.Unmarshal(out, &a); err != nil {
		return Availability{}, fmt.Errorf("inventory %s answered %q: %w", s.appID, out, err)
	}
	return a.availability(), nil
}

// Confirm implements Stock.
func (s *InvokeStock) Confirm(t Taken) { s.confirms.add(t) }

// confirmBatch sends the confirmations no /reserve carried in one POST
// /confirm. A lost batch costs nothing but time: the inventory's hold sweep
// confirms those holds by looking the orders up. The seed's inventory has no
// /confirm, nor holds to confirm (its /check takes stock outright): its 404
// is logged once, and the calls go on, for when ours is back in its place.
func (s *InvokeStock) confirmBatch(taken []Taken) {
	ctx, cancel := context.WithTimeout(context.Background(), reserveTimeout)
	defer cancel()
	body, _ := json.Marshal(struct {
		Orders []Taken `json:"orders"`
	}{taken})
	_, err := s.invoker.Invoke(ctx, s.appID, "POST", "confirm", body)
	var ie *bindings.InvokeError
	switch {
	case err == nil:
		s.noHolds.Store(false)
	case errors.As(err, &ie) && (ie.Status == 404 || ie.Status == 405):
		if !s.noHolds.Swap(true) {
			s.log.Warn("the inventory has no POST /confirm (the seed's?): it holds no stock to confirm", "inventory", s.appID)
		}
	default:
		s.log.Warn("confirming stock holds failed; the inventory's hold sweep will settle them", "orders", len(taken), "error", err.Error())
	}
}

// invokeError keeps a 404 a NotFound so callers can tell an unknown product.
func invokeError(err error) error {
	var ie *bindings.InvokeError
	if errors.As(err, &ie) && ie.Status == 404 {
		return productNotFound(err)
	}
	return err
}

func productNotFound(err error) error {
	return &runtime.Error{Outcome: runtime.Drop, Status: 404, Code: "product_not_found", Message: "Product not found", Err: err}
}
