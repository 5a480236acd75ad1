package orderevent

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSignedEventsVerifyAndAnyChangeBreaksThem(t *testing.T) {
	key := Key("a-deployment-credential")
	require.Len(t, key, 32)
	e := Event{OrderID: "order-1", CustomerEmail: "a@example.com", ProductID: "product-1", Quantity: 2}.Signed(key)
	require.NotEmpty(t, e.Signature)
	assert.True(t, e.SignedBy(key))

	for name, changed := range map[string]Event{
		"recipient": {OrderID: "order-1", CustomerEmail: "b@example.com", ProductID: "product-1", Quantity: 2},
		"product":   {OrderID: "order-1", CustomerEmail: "a@example.com", ProductID: "product-2", Quantity: 2},
		"quantity":  {OrderID: "order-1", CustomerEmail: "a@example.com", ProductID: "product-1", Quantity: 3},
		"order id":  {OrderID: "order-2", CustomerEmail: "a@example.com", ProductID: "product-1", Quantity: 2},
		// Without length prefixes these two would sign the same bytes.
		"shifted": {OrderID: "order-1a", CustomerEmail: "@example.com", ProductID: "product-1", Quantity: 2},
	} {
		changed.Signature = e.Signature
		assert.False(t, changed.SignedBy(key), name)
	}
	assert.False(t, e.SignedBy(Key("another-credential")), "another deployment's key")
	assert.False(t, e.SignedBy(nil), "no key verifies nothing")
	unsigned := e.Signed(nil)
	assert.Empty(t, unsigned.Signature)
	assert.False(t, unsigned.SignedBy(key))
}

func TestTheSeedsReadersSeeTheSeedsFields(t *testing.T) {
	raw, err := json.Marshal(Event{OrderID: "order-1", CustomerEmail: "a@example.com", ProductID: "product-1", Quantity: 2})
	require.NoError(t, err)
	assert.JSONEq(t, `{"orderId":"order-1","customerEmail":"a@example.com","productId":"product-1","quantity":2}`, string(raw))
}
