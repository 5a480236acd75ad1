package orderstore_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/bindings/memory"
	"github.com/daprfn/shop/bindings/orderstore"
)

type record struct {
	ID    string `json:"id"`
	Total int    `json:"total"`
}

func TestLocalStorageWritesOneJSONFilePerRecord(t *testing.T) {
	out := &memory.Bindings{}
	w, err := orderstore.New(out, "orderstore", bindings.FixedType(orderstore.LocalStorage), "")
	require.NoError(t, err)
	require.NoError(t, w.EnsureSchema(context.Background()))
	require.NoError(t, w.Write(context.Background(), "order-1", record{ID: "order-1", Total: 3}))
	calls := out.Calls("orderstore")
	require.Len(t, calls, 1, "no schema call for files")
	assert.Equal(t, "create", calls[0].Operation)
	assert.Equal(t, "order-1.json", calls[0].Metadata["fileName"])
	assert.JSONEq(t, `{"id":"order-1","total":3}`, string(calls[0].Data))
}

func TestPostgreSQLInsertsOneRowPerRecord(t *testing.T) {
	out := &memory.Bindings{}
	w, err := orderstore.New(out, "orderstore", bindings.FixedType(orderstore.PostgreSQL), "shop_orders")
	require.NoError(t, err)
	require.NoError(t, w.EnsureSchema(context.Background()))
	require.NoError(t, w.Write(context.Background(), "order-1", record{ID: "order-1", Total: 3}))
	calls := out.Calls("orderstore")
	require.Len(t, calls, 2)
	assert.Equal(t, "exec", calls[0].Operation)
	assert.Contains(t, calls[0].Metadata["sql"], "CREATE TABLE IF NOT EXISTS shop_orders")
	assert.Contains(t, calls[1].Metadata["sql"], "INSERT INTO shop_orders")
	assert.Contains(t, calls[1].Metadata["sql"], "ON CONFLICT (id) DO NOTHING", "writing twice leaves one row")
	var params []string
	require.NoError(t, json.Unmarshal([]byte(calls[1].Metadata["params"]), &params))
	require.Len(t, params, 2)
	assert.Equal(t, "order-1", params[0])
	assert.JSONEq(t, `{"id":"order-1","total":3}`, params[1])
}

func TestBadTableAndTypeAreErrors(t *testing.T) {
	_, err := orderstore.New(&memory.Bindings{}, "orderstore", bindings.FixedType(orderstore.PostgreSQL), "orders; drop table x")
	assert.Error(t, err)
	w, err := orderstore.New(&memory.Bindings{}, "orderstore", bindings.FixedType("bindings.http"), "")
	require.NoError(t, err)
	err = w.EnsureSchema(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "bindings.http")
}
