package stock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/runtime/batch"
)

// ConfirmAfter is how long a confirmation waits for a POST /reserve to carry
// it before it goes in a POST /confirm of its own.
const ConfirmAfter = 100 * time.Millisecond

// CallTimeout bounds one call to the inventory. A take whose call is in
// flight waits for its answer, however long its own context, so that it
// knows whether the stock was taken.
const CallTimeout = 10 * time.Second

// Client is Stock over service invocation of the inventory app. Takes that
// arrive while a call is in flight go together in the next POST /reserve, so
// a busy order-service pays one sidecar hop for many orders and an idle one
// sends each take at once. Confirmations ride along with the next /reserve,
// so a busy shop's holds last about one call and cost no call of their own;
// those no /reserve carried within ConfirmAfter go in a POST /confirm.
// Against an inventory without /reserve (the seed's) it falls back to the
// seed's POST /check, one order per call.
type Client struct {
	invoker bindings.Invoker
	appID   string
	log     *slog.Logger

	perOrder atomic.Bool // the inventory has no /reserve
	noHolds  atomic.Bool // the last /confirm got 404 (the seed's inventory): logged when it starts
	takes    *batch.Group[CheckRequest, Availability]
	confirms *batch.Group[Confirmation, struct{}]
	checks   sync.WaitGroup // the /checks of a /reserve that found no such route
}

// NewClient returns the Stock of the inventory app appID; log (nil for
// none) gets a warning for each way the inventory falls short. Close sends
// the confirmations still queued.
func NewClient(invoker bindings.Invoker, appID string, log *slog.Logger) *Client {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{invoker: invoker, appID: appID, log: log}
	c.takes = batch.New(batch.Options{Max: MaxReservations}, c.reserve)
	c.confirms = batch.New(batch.Options{Max: MaxConfirmations, Linger: ConfirmAfter}, c.confirm)
	return c
}

// Close waits for the takes in flight and sends the confirmations still
// queued, without waiting ConfirmAfter.
func (c *Client) Close() {
	c.takes.Close()
	c.checks.Wait()
	c.confirms.Close()
}

// Take implements Stock.
func (c *Client) Take(ctx context.Context, orderID, productID string, qty int) (Availability, error) {
	in := CheckRequest{OrderID: orderID, ProductID: productID, Quantity: qty}
	if c.perOrder.Load() {
		return c.check(ctx, in)
	}
	a, err := c.takes.Do(ctx, in)
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return Availability{}, fmt.Errorf("waiting for the inventory: %w", err)
	}
	return a, err
}

// Confirm implements Stock.
func (c *Client) Confirm(t Taken) { c.confirms.Add(Confirmation(t)) }

// reserve sends a batch of takes in one POST /reserve, with the queued
// confirmations.
func (c *Client) reserve(calls []*batch.Call[CheckRequest, Availability]) {
	req := ReserveRequest{Orders: make([]CheckRequest, len(calls)), Confirm: c.confirms.Take(MaxConfirmations)}
	for i, call := range calls {
		req.Orders[i] = call.In
	}
	var ans ReserveResponse
	err := c.post(context.Background(), "reserve", req, &ans)
	if err == nil && len(ans.Orders) != len(calls) {
		err = fmt.Errorf("inventory %s answered /reserve of %d orders with %d", c.appID, len(calls), len(ans.Orders))
	}
	c.carried(req.Confirm, err)
	if noRoute(err) {
		if !c.perOrder.Swap(true) {
			c.log.Warn("the inventory has no POST /reserve (the seed's inventory?): checking stock one order per call", "inventory", c.appID)
		}
		for _, call := range calls {
			c.checks.Go(func() { call.Answer(c.check(call.Context(), call.In)) })
		}
		return
	}
	for i, call := range calls {
		switch r := ans.Orders; {
		case err != nil:
			call.Answer(Availability{}, err)
		case r[i].OrderID != call.In.OrderID:
			call.Answer(Availability{}, fmt.Errorf("inventory %s answered order %s in the place of %s", c.appID, r[i].OrderID, call.In.OrderID))
		case r[i].NotFound:
			call.Answer(Availability{}, productNotFound(nil))
		default:
			call.Answer(availability(r[i].CheckResponse), nil)
		}
	}
}

// carried settles the confirmations a /reserve carried, which were applied
// if it succeeded. When it failed they are queued again (confirming twice
// drops nothing twice); when the inventory refused the call they are
// dropped, as sending them again would be refused again: the hold sweep
// settles them.
func (c *Client) carried(confirms []Confirmation, err error) {
	if len(confirms) == 0 || err == nil {
		return
	}
	if st := status(err); st >= 400 && st < 500 && !noRoute(err) {
		c.log.Warn("the inventory refused a POST /reserve carrying confirmations; the inventory's hold sweep will settle them", "orders", len(confirms), "error", err.Error())
		return
	}
	for _, cf := range confirms {
		c.confirms.Add(cf)
	}
}

// check is the seed's POST /check for one order.
func (c *Client) check(ctx context.Context, in CheckRequest) (Availability, error) {
	var r CheckResponse
	if err := c.post(ctx, "check", in, &r); err != nil {
		if status(err) == 404 {
			return Availability{}, productNotFound(err)
		}
		return Availability{}, err
	}
	return availability(r), nil
}

// confirm sends the confirmations no /reserve carried in one POST /confirm.
// A lost batch costs nothing but time: the inventory's hold sweep confirms
// those holds by looking the orders up. The seed's inventory has no
// /confirm, nor holds to confirm (its /check takes stock outright): its 404
// is logged once, and the calls go on, for when ours is back in its place.
func (c *Client) confirm(calls []*batch.Call[Confirmation, struct{}]) {
	req := ConfirmRequest{Orders: make([]Confirmation, len(calls))}
	for i, call := range calls {
		req.Orders[i] = call.In
	}
	err := c.post(context.Background(), "confirm", req, nil)
	switch {
	case err == nil:
		c.noHolds.Store(false)
	case noRoute(err):
		if !c.noHolds.Swap(true) {
			c.log.Warn("the inventory has no POST /confirm (the seed's?): it holds no stock to confirm", "inventory", c.appID)
		}
	default:
		c.log.Warn("confirming stock holds failed; the inventory's hold sweep will settle them", "orders", len(calls), "error", err.Error())
	}
	for _, call := range calls {
		call.Answer(struct{}{}, err)
	}
}

// post sends in to the inventory's POST /method, bounded by CallTimeout,
// and decodes the answer into out unless it is nil.
func (c *Client) post(ctx context.Context, method string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	raw, err := c.invoker.Invoke(ctx, c.appID, "POST", method, body)
	if err != nil || out == nil {
		return err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("inventory %s answered POST /%s with %q: %w", c.appID, method, raw, err)
	}
	return nil
}

func availability(r CheckResponse) Availability {
	return Availability{Available: r.Available, ProductName: r.ProductName, Remaining: r.RemainingStock}
}

// status is the HTTP status the invoked app answered err with, or 0.
func status(err error) int {
	if ie, ok := errors.AsType[*bindings.InvokeError](err); ok {
		return ie.Status
	}
	return 0
}

// noRoute tells an app without the route (404 or 405) from other failures.
func noRoute(err error) bool { st := status(err); return st == 404 || st == 405 }

// productNotFound is ErrProductNotFound with its cause, for the logs.
func productNotFound(cause error) error {
	e := *ErrProductNotFound
	e.Err = cause
	return &e
}
