package orderevent

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/runtime"
	"github.com/daprfn/shop/runtime/runtimetest"
)

// orderApp serves GET /orders/{id} for the stored orders and, unless seed,
// POST /orders/lookup; it counts the calls of each route.
func orderApp(t *testing.T, stored map[string]Stored, seed bool) (*runtimetest.Sidecar, map[string]int) {
	t.Helper()
	calls := map[string]int{}
	raw := func(id string) json.RawMessage {
		o := stored[id]
		b, _ := json.Marshal(map[string]any{"id": id, "productId": o.ProductID, "quantity": o.Quantity, "customerEmail": o.CustomerEmail, "status": "confirmed"})
		return b
	}
	app := runtime.New(runtime.Options{})
	runtime.Invoke(app, "GET /orders/{id}", func(_ context.Context, in getRequest) (json.RawMessage, error) {
		calls["get"]++
		if _, ok := stored[in.id]; !ok {
			return nil, runtime.NotFound("order_not_found", "Order not found")
		}
		return raw(in.id), nil
	})
	if !seed {
		runtime.Invoke(app, "POST /orders/lookup", func(_ context.Context, in LookupRequest) (LookupResponse, error) {
			calls["lookup"]++
			out := LookupResponse{Orders: []json.RawMessage{}}
			for _, id := range in.IDs {
				if _, ok := stored[id]; ok {
					out.Orders = append(out.Orders, raw(id))
				}
			}
			return out, nil
		})
	}
	sc := runtimetest.New()
	sc.Serve("order-service", app)
	return sc, calls
}

// downInvoker answers every call with a 500.
type downInvoker struct{}

func (downInvoker) Invoke(_ context.Context, appID, _, method string, _ []byte) ([]byte, error) {
	return nil, &bindings.InvokeError{AppID: appID, Method: method, Status: 500, Body: `{"error":"down"}`}
}

type getRequest struct{ id string }

func (r *getRequest) BindRequest(req runtime.Request) error { r.id = req.PathValue("id"); return nil }

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "order-" + strconv.Itoa(i)
	}
	return out
}

func TestInvokeLookupLooksManyOrdersUpInOneCallPerThousand(t *testing.T) {
	stored := map[string]Stored{
		"order-3":    {Found: true, ProductID: "product-1", Quantity: 2, CustomerEmail: "a@example.com"},
		"order-1200": {Found: true, ProductID: "product-2", Quantity: 1, CustomerEmail: "b@example.com"},
	}
	sc, calls := orderApp(t, stored, false)
	l := InvokeLookup{Invoker: sc, AppID: "order-service"}
	got, err := LookupAll(context.Background(), l, ids(1500))
	require.NoError(t, err)
	require.Len(t, got, 1500)
	assert.Equal(t, stored["order-3"], got[3])
	assert.Equal(t, stored["order-1200"], got[1200])
	assert.Equal(t, Stored{}, got[4], "not stored")
	assert.Equal(t, map[string]int{"lookup": 2}, calls, "1 500 ids in two calls")

	one, err := l.LookupOrder(context.Background(), "order-3")
	require.NoError(t, err)
	assert.Equal(t, stored["order-3"], one)
	none, err := l.LookupOrder(context.Background(), "order-4")
	require.NoError(t, err)
	assert.False(t, none.Found, "a 404 is an order that does not exist")
}

func TestInvokeLookupAsksAnOrderAppWithoutTheRouteOneOrderAtATime(t *testing.T) {
	stored := map[string]Stored{"order-1": {Found: true, ProductID: "product-1", Quantity: 5, CustomerEmail: "a@example.com"}}
	sc, calls := orderApp(t, stored, true)
	got, err := InvokeLookup{Invoker: sc, AppID: "order-service"}.LookupOrders(context.Background(), ids(3))
	require.NoError(t, err)
	assert.Equal(t, []Stored{{}, stored["order-1"], {}}, got)
	assert.Equal(t, map[string]int{"get": 3}, calls, "the seed's order-service has only GET /orders/{id}")
}

func TestInvokeLookupFailsWhenTheOrderAppDoes(t *testing.T) {
	_, err := InvokeLookup{Invoker: downInvoker{}, AppID: "order-service"}.LookupOrders(context.Background(), ids(2))
	assert.Error(t, err, "an order that cannot be looked up is not an order that does not exist")
}

func TestLookupAllAsksAPlainLookupOneByOne(t *testing.T) {
	var asked []string
	l := LookupFunc(func(_ context.Context, id string) (Stored, error) {
		asked = append(asked, id)
		if id == "order-2" {
			return Stored{}, errors.New("down")
		}
		return Stored{Found: id == "order-1"}, nil
	})
	got, err := LookupAll(context.Background(), l, []string{"order-0", "order-1"})
	require.NoError(t, err)
	assert.Equal(t, []Stored{{}, {Found: true}}, got)
	_, err = LookupAll(context.Background(), l, []string{"order-2", "order-3"})
	assert.ErrorContains(t, err, "order-2", "fails as a whole")
	assert.Equal(t, []string{"order-0", "order-1", "order-2"}, asked)
}

func TestBulkLookupFuncAnswersOneOrderToo(t *testing.T) {
	f := BulkLookupFunc(func(_ context.Context, ids []string) ([]Stored, error) {
		out := make([]Stored, len(ids))
		for i, id := range ids {
			out[i] = Stored{Found: id == "order-1", Quantity: len(ids)}
		}
		return out, nil
	})
	o, err := f.LookupOrder(context.Background(), "order-1")
	require.NoError(t, err)
	assert.Equal(t, Stored{Found: true, Quantity: 1}, o)
	many, err := LookupAll(context.Background(), f, []string{"order-1", "order-2"})
	require.NoError(t, err)
	assert.Equal(t, []Stored{{Found: true, Quantity: 2}, {Quantity: 2}}, many, "one call for both")
}

func TestLookupRequestValidation(t *testing.T) {
	assert.NoError(t, LookupRequest{IDs: ids(MaxLookup)}.Validate())
	for name, r := range map[string]LookupRequest{
		"none":     {},
		"too many": {IDs: ids(MaxLookup + 1)},
		"unsafe":   {IDs: []string{"order-1", "../x"}},
	} {
		err := r.Validate()
		require.Error(t, err, name)
		assert.Equal(t, "invalid_order_ids", runtime.Classify(err).Code, name)
	}
}
