package e2e

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/internal/daprtest"
)

// TestComponentScopesKeepEachAppToItsData runs the shop on the component
// files as shipped (components/redis, components/email-files) and asks each
// sidecar's metadata API what it loaded: each app sees only its components,
// and a state store scoped to others cannot be read through its sidecar.
func TestComponentScopesKeepEachAppToItsData(t *testing.T) {
	redis := daprtest.StartRedis(t)
	s := startShop(t, "", shopOptions{
		daprdDir: "..", // the local secret store's file path is relative to the repository
		components: func(ids map[string]string, emailDir, orderDir string) map[string]string {
			return repoComponents(t, []string{"redis", "email-files"}, ids, map[string]string{
				"envRef: REDIS_HOST": "value: " + redis.Addr,
				"value: data/emails": "value: " + emailDir,
				"value: data/orders": "value: " + orderDir,
			})
		},
	})
	want := map[*shopApp][]string{
		s.order:        {"localsecrets", "orderstore", "outbox-sweep", "pubsub", "statestore"},
		s.inventory:    {"hold-sweep", "localsecrets", "restock", "statestore"},
		s.notification: {"email", "email-sweep", "localsecrets", "notification-state", "pubsub"},
	}
	for a, names := range want {
		status, body := get(t, a.daprd.URL("/v1.0/metadata"))
		require.Equal(t, http.StatusOK, status, body)
		var md struct {
			Components []struct{ Name string } `json:"components"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &md))
		var got []string
		for _, c := range md.Components {
			got = append(got, c.Name)
		}
		slices.Sort(got)
		assert.Equal(t, names, got, "components %s's sidecar loaded", a.appID)
	}

	status, body := s.placeOrder(t, `{"productId":"product-1","quantity":1,"customerEmail":"a@example.com"}`)
	require.Equal(t, http.StatusOK, status, body)
	id := decodeOrderID(t, body)
	require.Eventually(t, func() bool { return s.emails(t)[id] == 1 }, 20*time.Second, 100*time.Millisecond)

	for _, c := range []struct {
		app   *shopApp
		store string
		key   string
	}{
		{s.notification, "statestore", id},                // notification cannot read orders
		{s.notification, "statestore", "stock-product-1"}, // nor stock
		{s.order, "notification-state", "notified-" + id}, // order cannot read notification records
		{s.inventory, "notification-state", "notified-" + id},
	} {
		status, body := get(t, c.app.daprd.URL("/v1.0/state/"+c.store+"/"+c.key))
		assert.GreaterOrEqual(t, status, 400, "%s reads %s/%s: %d %s", c.app.appID, c.store, c.key, status, body)
		assert.Contains(t, body, "not found", "%s has no %s component", c.app.appID, c.store)
	}
	status, body = get(t, s.notification.daprd.URL("/v1.0/state/notification-state/deadletter-none"))
	assert.Equal(t, http.StatusNoContent, status, "notification reads its own store (no such key): %s", body)
}
