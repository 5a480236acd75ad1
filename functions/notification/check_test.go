package notification

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings/memory"
	"github.com/daprfn/shop/functions/orderevent"
	"github.com/daprfn/shop/runtime"
)

// storedOrders is the order function as the check sees it; a missing id
// is not stored, and an id mapped to down fails the lookup.
type storedOrders map[string]orderevent.Stored

var errOrdersDown = errors.New("order-service unreachable")

func (o storedOrders) LookupOrder(_ context.Context, id string) (orderevent.Stored, error) {
	st, ok := o[id]
	if ok && st.ProductID == "down" {
		return orderevent.Stored{}, errOrdersDown
	}
	return st, nil
}

func TestOnlyEventsOfStoredOrdersAreEmailed(t *testing.T) {
	key := orderevent.Key("the deployment's credential")
	real := OrderEvent{OrderID: "order-real", CustomerEmail: "a@example.com", ProductID: "product-1", Quantity: 2}
	orders := storedOrders{
		"order-real": {Found: true, CustomerEmail: "a@example.com", ProductID: "product-1", Quantity: 2},
		"order-down": {ProductID: "down"},
	}
	ev := func(id string, o OrderEvent) runtime.Event[OrderEvent] {
		return runtime.Event[OrderEvent]{EventMeta: runtime.EventMeta{ID: id, Source: "somebody"}, Data: o}
	}
	for _, c := range []struct {
		name    string
		event   OrderEvent
		emailed bool
		reason  string
	}{
		{"signed by the order function: no lookup needed", OrderEvent{OrderID: "order-unlooked", CustomerEmail: "b@example.com", ProductID: "product-3", Quantity: 1}.Signed(key), true, ""},
		{"unsigned, as the seed's order-service publishes it, matching the stored order", real, true, ""},
		{"an unknown order id", OrderEvent{OrderID: "order-made-up", CustomerEmail: "victim@example.com", ProductID: "product-1", Quantity: 1}, false, "no order has this id"},
		{"a real order id with another address", OrderEvent{OrderID: "order-real", CustomerEmail: "victim@example.com", ProductID: "product-1", Quantity: 2}, false, "another recipient"},
		{"a real order id with another quantity", OrderEvent{OrderID: "order-real", CustomerEmail: "a@example.com", ProductID: "product-1", Quantity: 9}, false, "another recipient, product or quantity"},
		{"a signature copied onto another address", func() OrderEvent {
			forged := real.Signed(key)
			forged.CustomerEmail = "victim@example.com"
			return forged
		}(), false, "another recipient"},
	} {
		t.Run(c.name, func(t *testing.T) {
			store, mail := memory.NewStore(), &downMailer{}
			s, err := New(store, mail, "shop@example.com", nil)
			require.NoError(t, err)
			s.CheckEvents(key, orders)

			require.NoError(t, s.Send(context.Background(), ev("ev-1", c.event)), "acknowledged either way: a refused event is not worth redelivering")
			refused, err := store.Get(context.Background(), RefusedKey("ev-1"))
			require.NoError(t, err)
			if c.emailed {
				assert.Equal(t, []string{c.event.OrderID}, mail.Sent())
				assert.False(t, refused.Found)
				return
			}
			assert.Empty(t, mail.Sent(), "nobody is emailed")
			require.True(t, refused.Found, "the refusal is recorded")
			assert.Contains(t, string(refused.Value), c.reason)
			assert.Contains(t, string(refused.Value), `"source":"somebody"`)
		})
	}

	t.Run("a lookup that fails is retried, not refused", func(t *testing.T) {
		store, mail := memory.NewStore(), &downMailer{}
		s, err := New(store, mail, "shop@example.com", nil)
		require.NoError(t, err)
		s.CheckEvents(key, orders)
		err = s.Send(context.Background(), ev("ev-2", OrderEvent{OrderID: "order-down", CustomerEmail: "a@example.com", ProductID: "product-1", Quantity: 1}))
		require.Error(t, err)
		assert.Equal(t, runtime.Retry, runtime.Classify(err).Outcome)
		assert.Empty(t, mail.Sent())
	})

	t.Run("a dead-lettered forgery is not sent after all", func(t *testing.T) {
		store, mail := memory.NewStore(), &downMailer{}
		s, err := New(store, mail, "shop@example.com", nil)
		require.NoError(t, err)
		s.CheckEvents(key, orders)
		dl := deadLettered(t, "order-made-up")
		require.NoError(t, s.DeadLetter(context.Background(), dl))
		assert.Empty(t, mail.Sent())
		refused, err := store.Get(context.Background(), RefusedKey(dl.ID))
		require.NoError(t, err)
		assert.True(t, refused.Found)
	})
}

func TestRecordKeysStaySafeWhateverTheEventID(t *testing.T) {
	assert.Equal(t, "refused-ev-1", RefusedKey("ev-1"))
	for _, id := range []string{"a||b", "../x", "", strings.Repeat("x", 500)} {
		k := RefusedKey(id)
		assert.True(t, runtime.SafeID(k), "%q makes the key %q", id, k)
		assert.NotEqual(t, RefusedKey(id+"y"), k)
	}
	assert.True(t, runtime.SafeID(DeadLetterKey("a||b")))
}
