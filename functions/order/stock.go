package order

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/runtime"
)

// InvokeStock is Stock over service invocation of the inventory app. Takes
// that arrive while a call is in flight go together in the next call, to
// POST /reserve, so a busy order-service pays one sidecar hop for many
// orders; an idle one sends each take at once. Against an inventory without
// /reserve (the seed's) it falls back to the seed's POST /check, one order
// per call. Confirm is POST /confirm.
type InvokeStock struct {
	invoker bindings.Invoker
	appID   string
	log     *slog.Logger

	perOrder atomic.Bool // the inventory has no /reserve

	mu       sync.Mutex
	queue    []*pendingTake
	inFlight bool
}

// NewInvokeStock returns the Stock of the inventory app appID.
func NewInvokeStock(invoker bindings.Invoker, appID string, log *slog.Logger) *InvokeStock {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &InvokeStock{invoker: invoker, appID: appID, log: log}
}

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

type pendingTake struct {
	ctx  context.Context // the taker's
	body checkBody
	done chan takeResult // buffered: the taker may have given up
}

type takeResult struct {
	a   Availability
	err error
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
	p := &pendingTake{ctx: ctx, body: body, done: make(chan takeResult, 1)}
	s.mu.Lock()
	s.queue = append(s.queue, p)
	lead := !s.inFlight
	s.inFlight = true
	s.mu.Unlock()
	if lead {
		go s.drain()
	}
	select {
	case r := <-p.done:
		return r.a, r.err
	case <-ctx.Done():
		// The take may still happen: its hold is then settled by the
		// inventory's sweep, which finds no order under orderID.
		return Availability{}, fmt.Errorf("waiting for the inventory: %w", ctx.Err())
	}
}

// drain sends the queued takes, up to maxReserve a call, until none is left.
func (s *InvokeStock) drain() {
	for {
		s.mu.Lock()
		n := min(len(s.queue), maxReserve)
		if n == 0 {
			s.inFlight = false
			s.mu.Unlock()
			return
		}
		batch := s.queue[:n:n]
		s.queue = s.queue[n:]
		s.mu.Unlock()
		// A taker that gave up before its turn takes nothing.
		batch = slices.DeleteFunc(batch, func(p *pendingTake) bool { return p.ctx.Err() != nil })
		if len(batch) > 0 {
			s.reserve(batch)
		}
	}
}

func (s *InvokeStock) reserve(batch []*pendingTake) {
	req := struct {
		Orders []checkBody `json:"orders"`
	}{Orders: make([]checkBody, len(batch))}
	for i, p := range batch {
		req.Orders[i] = p.body
	}
	body, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(context.Background(), reserveTimeout)
	defer cancel()
	out, err := s.invoker.Invoke(ctx, s.appID, "POST", "reserve", body)
	var ie *bindings.InvokeError
	if errors.As(err, &ie) && (ie.Status == 404 || ie.Status == 405) {
		if !s.perOrder.Swap(true) {
			s.log.Warn("the inventory has no POST /reserve (the seed's inventory?): checking stock one order per call", "inventory", s.appID)
		}
		for _, p := range batch {
			go func() {
				a, err := s.check(p.ctx, p.body)
				p.done <- takeResult{a, err}
			}()
		}
		return
	}
	var answer struct {
		Orders []reservation `json:"orders"`
	}
	if err == nil {
		if e := json.Unmarshal(out, &answer); e != nil || len(answer.Orders) != len(batch) {
			err = fmt.Errorf("inventory %s answered /reserve of %d orders with %q", s.appID, len(batch), out)
		}
	}
	for i, p := range batch {
		switch r := answer.Orders; {
		case err != nil:
			p.done <- takeResult{err: err}
		case r[i].OrderID != p.body.OrderID:
			p.done <- takeResult{err: fmt.Errorf("inventory %s answered order %s in the place of %s", s.appID, r[i].OrderID, p.body.OrderID)}
		case r[i].NotFound:
			p.done <- takeResult{err: productNotFound(nil)}
		default:
			p.done <- takeResult{a: r[i].availability()}
		}
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
func (s *InvokeStock) Confirm(ctx context.Context, taken []Taken) error {
	body, _ := json.Marshal(struct {
		Orders []Taken `json:"orders"`
	}{taken})
	_, err := s.invoker.Invoke(ctx, s.appID, "POST", "confirm", body)
	return err
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
