package order

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings/memory"
	"github.com/daprfn/shop/functions/orderevent"
)

func TestLookupAnswersTheStoredOrdersOnly(t *testing.T) {
	ctx := context.Background()
	store := memory.NewStore()
	stored := `{"id":"order-1","productId":"product-1","quantity":2,"customerEmail":"a@example.com","status":"confirmed"}`
	require.NoError(t, store.Save(ctx, "order-1", []byte(stored), ""))
	require.NoError(t, store.Save(ctx, "outbox-owners", []byte(`{"owners":[]}`), ""))
	s := &Service{Config: Config{Store: store}}

	ans, err := s.Lookup(ctx, orderevent.LookupRequest{IDs: []string{"order-2", "order-1", "outbox-owners"}})
	require.NoError(t, err)
	require.Len(t, ans.Orders, 1, "an id of no order is left out, and keys that are no order's are never read")
	assert.JSONEq(t, stored, string(ans.Orders[0]), "as GET /orders/{id} answers it")

	found, err := s.FindAll(ctx, []string{"order-2", "order-1", "outbox-owners"})
	require.NoError(t, err)
	assert.Equal(t, []orderevent.Stored{{}, {Found: true, ProductID: "product-1", Quantity: 2, CustomerEmail: "a@example.com"}, {}}, found)

	require.NoError(t, store.Save(ctx, "order-3", []byte(`{"id":`), ""))
	_, err = s.Lookup(ctx, orderevent.LookupRequest{IDs: []string{"order-1", "order-3"}})
	require.Error(t, err, "a corrupt order is an error, not an order that does not exist")
}
