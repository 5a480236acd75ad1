package lease

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/runtime"
)

func TestOrderIDsAreFixedByTheLeaseAndDistinctPerSlot(t *testing.T) {
	g := NewGrant(100)
	assert.True(t, ValidID(g.ID), g.ID)
	assert.True(t, ValidSecret(g.Secret), g.Secret)
	seen := map[string]bool{}
	for slot := range 100 {
		id := OrderID(g, slot)
		assert.Regexp(t, `^order-[0-9a-f]{32}$`, id)
		assert.Equal(t, id, OrderID(Grant{ID: g.ID, Secret: g.Secret}, slot), "derived from the id and secret only")
		seen[id] = true
	}
	assert.Len(t, seen, 100)

	other := NewGrant(100)
	assert.NotEqual(t, g.ID, other.ID)
	assert.NotEqual(t, OrderID(g, 0), OrderID(other, 0), "another lease, other ids")
	assert.NotEqual(t, OrderID(g, 0), OrderID(Grant{ID: g.ID, Secret: other.Secret}, 0), "the secret keys the ids")
	assert.Equal(t, "order-invalid-lease-secret", OrderID(Grant{ID: g.ID, Secret: "not hex"}, 0))
}

// The derivation is a wire contract: an inventory settles the leases of an
// order-service of another version by it. HMAC-SHA256 keyed by the secret
// over id, a zero byte and the slot in decimal, computed apart from Go.
func TestOrderIDsAreHMACOfTheLeaseIDAndSlot(t *testing.T) {
	g := Grant{ID: "lease-ABCDEFGHIJKLMNOPQRSTUVWXY2", Secret: "0123456789abcdef0123456789abcdef"}
	assert.Equal(t, "order-6a0a459cae174b13b1323a2d5b95263c", OrderID(g, 0))
	assert.Equal(t, "order-f80bbf89cd0630ab8d63a40e7811800b", OrderID(g, 7))
}

func TestSlotsGiveEachSlotTheIDOrderIDGives(t *testing.T) {
	g := NewGrant(50)
	slots := NewSlots(g)
	for slot := 49; slot >= 0; slot-- { // any order: no state carries over
		assert.Equal(t, OrderID(g, slot), slots.OrderID(slot), "slot %d", slot)
	}
	assert.Equal(t, "order-invalid-lease-secret", NewSlots(Grant{ID: g.ID, Secret: "not hex"}).OrderID(3))
}

func TestValidation(t *testing.T) {
	for _, id := range []string{"", "lease-", "lease-abc", "order-ABCDEFGHIJKLMNOPQRSTUVWXYZ", "lease-ABCDEFGHIJKLMNOPQRSTUVWXY1", "lease-abcdefghijklmnopqrstuvwxyz"} {
		assert.False(t, ValidID(id), id)
	}
	assert.True(t, ValidID("lease-ABCDEFGHIJKLMNOPQRSTUVWXY2"))
	for _, s := range []string{"", "00", "0123456789abcdef0123456789abcdeg", "0123456789abcdef0123456789abcdef00"} {
		assert.False(t, ValidSecret(s), s)
	}
	assert.True(t, ValidSecret("0123456789abcdef0123456789ABCDEF"))
}

func TestRequestValidation(t *testing.T) {
	g := NewGrant(10)
	for name, r := range map[string]Request{
		"nothing asked":   {ProductID: "product-1"},
		"no product":      {Grant: &g},
		"bad lease id":    {ProductID: "product-1", Grant: &Grant{ID: "lease-x", Quantity: 1, Secret: g.Secret}},
		"bad secret":      {ProductID: "product-1", Grant: &Grant{ID: g.ID, Quantity: 1, Secret: "zz"}},
		"zero units":      {ProductID: "product-1", Grant: &Grant{ID: g.ID, Quantity: 0, Secret: g.Secret}},
		"too many units":  {ProductID: "product-1", Grant: &Grant{ID: g.ID, Quantity: MaxQuantity + 1, Secret: g.Secret}},
		"negative used":   {ProductID: "product-1", Settle: []Settlement{{ID: g.ID, Used: -1}}},
		"bad settlement":  {ProductID: "product-1", Settle: []Settlement{{ID: "order-1"}}},
		"too many settle": {ProductID: "product-1", Settle: make([]Settlement, MaxSettlements+1)},
	} {
		err := r.Validate()
		require.Error(t, err, name)
		assert.Equal(t, 400, runtime.Classify(err).Status, name)
	}
	require.NoError(t, Request{ProductID: "product-1", Grant: &g, Settle: []Settlement{{ID: g.ID, Used: 3}}}.Validate())
}
