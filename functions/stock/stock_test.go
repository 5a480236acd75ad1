package stock

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/runtime"
)

// invalid asserts that err is a 400 with code.
func invalid(t *testing.T, err error, code, name string) {
	t.Helper()
	var e *runtime.Error
	if assert.ErrorAs(t, err, &e, name) {
		assert.Equal(t, 400, e.Status, name)
		assert.Equal(t, code, e.Code, name)
	}
}

func TestCheckRequestValidation(t *testing.T) {
	assert.NoError(t, CheckRequest{ProductID: "product-1", Quantity: 1}.Validate(), "the seed's check has no order id")
	assert.NoError(t, CheckRequest{ProductID: "product-1", Quantity: MaxQuantity, OrderID: "order-1"}.Validate())
	for name, c := range map[string]struct {
		r    CheckRequest
		code string
	}{
		"no product":      {CheckRequest{ProductID: " ", Quantity: 1}, "invalid_product_id"},
		"long product":    {CheckRequest{ProductID: string(make([]byte, 101)), Quantity: 1}, "invalid_product_id"},
		"zero":            {CheckRequest{ProductID: "product-1"}, "invalid_quantity"},
		"too much":        {CheckRequest{ProductID: "product-1", Quantity: MaxQuantity + 1}, "invalid_quantity"},
		"unsafe order":    {CheckRequest{ProductID: "product-1", Quantity: 1, OrderID: "../x"}, "invalid_order_id"},
		"unclaimed check": {CheckRequest{ProductID: "product-1", Quantity: 1, OrderID: UnclaimedCheckPrefix + "x"}, "invalid_order_id"},
	} {
		invalid(t, c.r.Validate(), c.code, name)
	}
}

func TestReserveRequestValidation(t *testing.T) {
	ok := CheckRequest{OrderID: "order-1", ProductID: "product-1", Quantity: 1}
	assert.NoError(t, ReserveRequest{Orders: []CheckRequest{ok}}.Validate())
	for name, c := range map[string]struct {
		r    ReserveRequest
		code string
	}{
		"empty":       {ReserveRequest{}, "invalid_reservations"},
		"no order id": {ReserveRequest{Orders: []CheckRequest{{ProductID: "product-1", Quantity: 1}}}, "invalid_order_id"},
		"bad qty":     {ReserveRequest{Orders: []CheckRequest{ok, {OrderID: "order-2", ProductID: "product-1", Quantity: 0}}}, "invalid_quantity"},
		"too many":    {ReserveRequest{Orders: slices.Repeat([]CheckRequest{ok}, MaxReservations+1)}, "invalid_reservations"},
		"bad confirm": {ReserveRequest{Orders: []CheckRequest{ok}, Confirm: []Confirmation{{OrderID: "order 1", ProductID: "product-1"}}}, "invalid_order_id"},
		"confirms":    {ReserveRequest{Orders: []CheckRequest{ok}, Confirm: slices.Repeat([]Confirmation{{"order-1", "product-1"}}, MaxConfirmations+1)}, "invalid_confirmations"},
	} {
		invalid(t, c.r.Validate(), c.code, name)
	}
}

func TestConfirmRequestValidation(t *testing.T) {
	assert.NoError(t, ConfirmRequest{Orders: []Confirmation{{"order-1", "product-1"}}}.Validate())
	invalid(t, ConfirmRequest{}.Validate(), "invalid_confirmations", "empty")
	invalid(t, ConfirmRequest{Orders: slices.Repeat([]Confirmation{{"order-1", "product-1"}}, MaxConfirmations+1)}.Validate(), "invalid_confirmations", "too many")
	invalid(t, ConfirmRequest{Orders: []Confirmation{{"order-1", ""}}}.Validate(), "invalid_product_id", "no product")
}

// The seed's wire shapes: its order-service and curl lines send and read
// exactly these fields.
func TestTheSeedsCheckContract(t *testing.T) {
	var in CheckRequest
	require.NoError(t, json.Unmarshal([]byte(`{"productId":"product-1","quantity":2}`), &in))
	assert.Equal(t, CheckRequest{ProductID: "product-1", Quantity: 2}, in)
	raw, err := json.Marshal(CheckResponse{Available: true, ProductName: "Laptop", RemainingStock: 8})
	require.NoError(t, err)
	assert.JSONEq(t, `{"available":true,"productName":"Laptop","remainingStock":8}`, string(raw))
	raw, err = json.Marshal(in)
	require.NoError(t, err)
	assert.JSONEq(t, `{"productId":"product-1","quantity":2}`, string(raw), "no order id sent when there is none")
}
