package e2e

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The PostgreSQL state store + RabbitMQ pub/sub + PostgreSQL order storage
// set, exactly as components/postgres-rabbitmq ships, against the servers
// this machine runs.
func TestShopOnPostgresAndRabbitMQ(t *testing.T) {
	s := startShop(t, "", shopOptions{
		daprdDir: "..", // the local secret store's file path is relative to the repository
		components: func(ids map[string]string, emailDir, _ string) map[string]string {
			return repoComponents(t, []string{"postgres-rabbitmq", "email-files"}, ids, map[string]string{"value: data/emails": "value: " + emailDir})
		},
	})
	status, body := s.placeOrder(t, `{"productId": "product-3", "quantity": 5, "customerEmail": "pg@example.com"}`)
	require.Equal(t, http.StatusOK, status, body)
	id := decodeOrderID(t, body)
	assert.Equal(t, 20, s.stock(t, "product-3"), "stock kept in PostgreSQL")

	resp, err := http.Get(s.order.daprd.URL("/v1.0/invoke/" + s.order.appID + "/method/orders/" + id))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	require.Eventually(t, func() bool { return s.emails(t)[id] == 1 }, 30*time.Second, 100*time.Millisecond, "the event went through RabbitMQ")
	require.Eventually(t, func() bool {
		out, err := exec.Command("psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAc",
			"SELECT body->>'customerEmail' FROM orders WHERE id = '"+id+"'").Output()
		return err == nil && strings.TrimSpace(string(out)) == "pg@example.com"
	}, 20*time.Second, 200*time.Millisecond, "the order row in PostgreSQL through the postgresql output binding")
}
