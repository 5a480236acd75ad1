package order_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/bindings/memory"
	"github.com/daprfn/shop/functions/order"
	"github.com/daprfn/shop/functions/orderevent"
	"github.com/daprfn/shop/functions/stock"
	"github.com/daprfn/shop/runtime"
	"github.com/daprfn/shop/runtime/outbox"
)

// shelf is a Stock of one product with units in stock; it records what was
// taken and confirmed.
type shelf struct {
	mu        sync.Mutex
	units     int
	err       error
	taken     []string
	confirmed []string
}

func (s *shelf) Take(_ context.Context, orderID, productID string, qty int) (stock.Availability, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return stock.Availability{}, s.err
	}
	if productID != "product-1" {
		return stock.Availability{}, runtime.NotFound("product_not_found", "no such product")
	}
	if s.units < qty {
		return stock.Availability{Available: false, ProductName: "Laptop", Remaining: s.units}, nil
	}
	s.units -= qty
	s.taken = append(s.taken, orderID)
	return stock.Availability{Available: true, ProductName: "Laptop", Remaining: s.units}, nil
}

func (s *shelf) Confirm(t stock.Taken) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.confirmed = append(s.confirmed, t.OrderID)
}

type shop struct {
	orders *order.Service
	store  *memory.Store
	pub    *memory.Publisher
	stock  *shelf
}

func newShop(t *testing.T, units int) shop {
	t.Helper()
	store, pub, stock := memory.NewStore(), &memory.Publisher{}, &shelf{units: units}
	events, err := outbox.New(outbox.Config{Store: store, Publisher: pub, Pubsub: "pubsub", Topic: "orders", Source: "order-service"})
	require.NoError(t, err)
	t.Cleanup(events.Close)
	orders, err := order.New(order.Config{Store: store, Stock: stock, Events: events, SigningKey: []byte("key")})
	require.NoError(t, err)
	return shop{orders, store, pub, stock}
}

func request(qty int) order.CreateRequest {
	return order.CreateRequest{ProductID: "product-1", Quantity: qty, CustomerEmail: "a@example.com"}
}

func TestAnOrderIsStoredWithItsSignedEventAndItsStockConfirmed(t *testing.T) {
	s := newShop(t, 10)
	resp, err := s.orders.Create(t.Context(), request(2))
	require.NoError(t, err)
	assert.Equal(t, "Order created successfully", resp.Status)

	raw, err := s.orders.Get(t.Context(), order.GetRequest{ID: resp.OrderID})
	require.NoError(t, err)
	var stored order.Order
	require.NoError(t, json.Unmarshal(raw, &stored))
	assert.Equal(t, order.Order{ID: resp.OrderID, ProductID: "product-1", Quantity: 2, CustomerEmail: "a@example.com",
		Status: "confirmed", CreatedAt: stored.CreatedAt}, stored)

	require.Len(t, s.pub.Published(), 1)
	ev := s.pub.Published()[0].Event
	assert.Equal(t, resp.OrderID, ev.ID, "the event's id is the order's: consumers deduplicate by it")
	assert.Equal(t, order.EventType, ev.Type)
	var data orderevent.Event
	require.NoError(t, json.Unmarshal(ev.Data.(json.RawMessage), &data))
	assert.True(t, data.SignedBy([]byte("key")))
	assert.True(t, data.Matches("a@example.com", "product-1", 2))
	assert.Equal(t, []string{resp.OrderID}, s.stock.confirmed)
}

func TestAnOrderThatCannotBePlacedStoresAndPublishesNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		req    order.CreateRequest
		down   error
		status int
		code   string
	}{
		{"too few units", request(11), nil, 400, "insufficient_inventory"},
		{"an unknown product", order.CreateRequest{ProductID: "product-9", Quantity: 1, CustomerEmail: "a@example.com"}, nil, 404, "product_not_found"},
		{"the inventory down", request(1), errors.New("connection refused"), 503, "unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newShop(t, 10)
			s.stock.err = tc.down
			_, err := s.orders.Create(t.Context(), tc.req)
			e := runtime.Classify(err)
			assert.Equal(t, tc.status, e.Status)
			assert.Equal(t, tc.code, e.Code)
			assert.Empty(t, s.pub.Published())
			assert.Empty(t, s.store.Keys())
			assert.Empty(t, s.stock.confirmed)
		})
	}
}

func TestAnOrderWhoseCommitFailsIsA503AndItsHoldIsLeftToTheSweep(t *testing.T) {
	s := newShop(t, 10)
	s.store.FailNextTransact(errors.New("state store down"))
	_, err := s.orders.Create(t.Context(), request(1))
	e := runtime.Classify(err)
	assert.Equal(t, 503, e.Status)
	assert.Contains(t, e.Message, "GET /orders/", "the answer tells how to find out")
	assert.Len(t, s.stock.taken, 1)
	assert.Empty(t, s.stock.confirmed, "not confirmed: the inventory's hold sweep settles it by looking the order up")
	assert.Empty(t, s.pub.Published())
}

func TestRequestsRacingWithOneIdempotencyKeyPlaceOneOrder(t *testing.T) {
	s := newShop(t, 100)
	app := runtime.New(runtime.Options{})
	runtime.Invoke(app, "POST /orders", s.orders.Create)
	post := func() runtime.Reply {
		return app.Dispatch(context.Background(), &runtime.Message{Kind: runtime.KindInvoke, Method: "POST", Path: "orders",
			ContentType: "application/json", Body: []byte(`{"productId":"product-1","quantity":1,"customerEmail":"a@example.com"}`),
			Metadata: map[string]string{"idempotency-key": "checkout-42"}})
	}
	replies := make([]runtime.Reply, 8)
	var wg sync.WaitGroup
	for i := range replies {
		wg.Go(func() { replies[i] = post() })
	}
	wg.Wait()
	require.Len(t, s.pub.Published(), 1, "one order, one event")
	placed := s.pub.Published()[0].Event.ID
	for _, r := range replies {
		if r.Err != nil {
			e := runtime.Classify(r.Err)
			assert.Equal(t, 409, e.Status, "a racer either answers as the first did or is told the key is in use")
			assert.Equal(t, "idempotency_key_in_use", e.Code)
			continue
		}
		var a order.CreateResponse
		require.NoError(t, json.Unmarshal(r.Body, &a))
		assert.Equal(t, placed, a.OrderID)
	}
	again := post()
	require.NoError(t, again.Err)
	var a order.CreateResponse
	require.NoError(t, json.Unmarshal(again.Body, &a))
	assert.Equal(t, order.CreateResponse{OrderID: placed, Status: "Order created successfully"}, a, "a retry gets the first answer")
	assert.Len(t, s.pub.Published(), 1)
	assert.Equal(t, []string{placed}, s.stock.confirmed,
		"the racers that lost took stock under ids no order has: the hold sweep gives it back")
}

// failingOrders fails every transaction that stores an order while fail is
// set, as a state store that is down would.
type failingOrders struct {
	*memory.Store
	fail atomic.Bool
}

func (f *failingOrders) Transact(ctx context.Context, ops []bindings.StateOp) error {
	if f.fail.Load() && strings.HasPrefix(ops[0].Key, "order-") {
		return errors.New("state store down")
	}
	return f.Store.Transact(ctx, ops)
}

func TestAnIdempotencyKeyWhoseOrderWasNeverStoredIsFreeAgainAfterItsHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &failingOrders{Store: memory.NewStore()}
		events, err := outbox.New(outbox.Config{Store: store, Publisher: &memory.Publisher{}, Pubsub: "pubsub", Topic: "orders"})
		require.NoError(t, err)
		defer events.Close()
		orders, err := order.New(order.Config{Store: store, Stock: &shelf{units: 10}, Events: events, CreateTimeout: 20 * time.Second})
		require.NoError(t, err)
		app := runtime.New(runtime.Options{})
		runtime.Invoke(app, "POST /orders", orders.Create)
		post := func() runtime.Reply {
			return app.Dispatch(context.Background(), &runtime.Message{Kind: runtime.KindInvoke, Method: "POST", Path: "orders",
				ContentType: "application/json", Body: []byte(`{"productId":"product-1","quantity":1,"customerEmail":"a@example.com"}`),
				Metadata: map[string]string{"idempotency-key": "checkout-7"}})
		}

		store.fail.Store(true)
		assert.Equal(t, 503, runtime.Classify(post().Err).Status, "the order was not stored")
		store.fail.Store(false)
		assert.Equal(t, 409, runtime.Classify(post().Err).Status,
			"its commit's outcome is unknown until its Create could no longer store it: the key stays claimed")

		time.Sleep(40 * time.Second) // twice ORDER_TIMEOUT
		r := post()
		require.NoError(t, r.Err, "the key is free again")
		var a order.CreateResponse
		require.NoError(t, json.Unmarshal(r.Body, &a))
		_, found, err := orders.Find(t.Context(), a.OrderID)
		require.NoError(t, err)
		assert.True(t, found)
		r = post()
		require.NoError(t, r.Err)
		var again order.CreateResponse
		require.NoError(t, json.Unmarshal(r.Body, &again))
		assert.Equal(t, a, again)
	})
}

func TestOrderIDsAreUnguessable(t *testing.T) {
	seen := map[string]bool{}
	for range 10000 {
		id := order.NewID()
		require.Regexp(t, `^order-[0-9a-f]{32}$`, id, "order- and 128 random bits in hex")
		require.False(t, seen[id], "ids never repeat")
		seen[id] = true
	}
}

func TestGetAnswersOnlyOrders(t *testing.T) {
	s := newShop(t, 10)
	require.NoError(t, s.store.Save(t.Context(), "idempotency-abc", []byte(`{}`), ""))
	for _, id := range []string{"idempotency-abc", "order-missing"} {
		_, err := s.orders.Get(t.Context(), order.GetRequest{ID: id})
		assert.ErrorIs(t, err, order.ErrNotFound, id)
	}
}
