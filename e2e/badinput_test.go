package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/internal/daprtest"
)

// TestBadInputThroughRealDaprd sends every kind of bad input through the
// sidecars, as a client would: each is answered with a JSON 4xx, nothing is
// stored or sent, and the apps stay up.
func TestBadInputThroughRealDaprd(t *testing.T) {
	redis := daprtest.StartRedis(t)
	s := startShop(t, redis.Addr, shopOptions{})
	orders := s.order.daprd.URL("/v1.0/invoke/" + s.order.appID + "/method/")
	inventory := s.inventory.daprd.URL("/v1.0/invoke/" + s.inventory.appID + "/method/")
	const ok = `{"productId":"product-1","quantity":1,"customerEmail":"a@example.com"}`
	cases := []struct {
		name, method, url, contentType, body string
		status                               int
		code                                 string
	}{
		{"malformed JSON", "POST", orders + "orders", "application/json", `{"productId":`, 400, "invalid_json"},
		{"not an object", "POST", orders + "orders", "application/json", `[1,2]`, 400, "invalid_json"},
		{"wrong type", "POST", orders + "orders", "application/json", `{"productId":"product-1","quantity":"2","customerEmail":"a@example.com"}`, 400, "invalid_field"},
		{"product id a number", "POST", orders + "orders", "application/json", `{"productId":1,"quantity":1,"customerEmail":"a@example.com"}`, 400, "invalid_field"},
		{"missing fields", "POST", orders + "orders", "application/json", `{}`, 400, "invalid_product_id"},
		{"missing quantity", "POST", orders + "orders", "application/json", `{"productId":"product-1","customerEmail":"a@example.com"}`, 400, "invalid_quantity"},
		{"missing email", "POST", orders + "orders", "application/json", `{"productId":"product-1","quantity":1}`, 400, "invalid_customer_email"},
		{"zero quantity", "POST", orders + "orders", "application/json", `{"productId":"product-1","quantity":0,"customerEmail":"a@example.com"}`, 400, "invalid_quantity"},
		{"negative quantity", "POST", orders + "orders", "application/json", `{"productId":"product-1","quantity":-1,"customerEmail":"a@example.com"}`, 400, "invalid_quantity"},
		{"huge quantity", "POST", orders + "orders", "application/json", `{"productId":"product-1","quantity":1e300,"customerEmail":"a@example.com"}`, 400, "invalid_field"},
		{"quantity over int64", "POST", orders + "orders", "application/json", `{"productId":"product-1","quantity":99999999999999999999,"customerEmail":"a@example.com"}`, 400, "invalid_field"},
		{"quantity over the limit", "POST", orders + "orders", "application/json", `{"productId":"product-1","quantity":1001,"customerEmail":"a@example.com"}`, 400, "invalid_quantity"},
		{"fractional quantity", "POST", orders + "orders", "application/json", `{"productId":"product-1","quantity":1.5,"customerEmail":"a@example.com"}`, 400, "invalid_field"},
		{"unknown product", "POST", orders + "orders", "application/json", `{"productId":"product-9","quantity":1,"customerEmail":"a@example.com"}`, 404, "product_not_found"},
		{"invalid email", "POST", orders + "orders", "application/json", `{"productId":"product-1","quantity":1,"customerEmail":"a@b"}`, 400, "invalid_customer_email"},
		{"email with a header injection", "POST", orders + "orders", "application/json", `{"productId":"product-1","quantity":1,"customerEmail":"a@example.com\r\nBcc: x@example.com"}`, 400, "invalid_customer_email"},
		{"body over the limit", "POST", orders + "orders", "application/json", `{"productId":"` + strings.Repeat("x", 2<<20) + `"}`, 413, "body_too_large"},
		{"wrong content type", "POST", orders + "orders", "text/plain", ok, 415, "unsupported_media_type"},
		{"form content type", "POST", orders + "orders", "application/x-www-form-urlencoded", ok, 415, "unsupported_media_type"},
		{"not UTF-8", "POST", orders + "orders", "application/json", "{\"productId\":\"product-1\xff\",\"quantity\":1,\"customerEmail\":\"a@example.com\"}", 400, "invalid_encoding"},
		{"duplicate keys", "POST", orders + "orders", "application/json", `{"productId":"product-1","quantity":1,"quantity":1000,"customerEmail":"a@example.com"}`, 400, "duplicate_key"},
		{"unknown route", "POST", orders + "nope", "application/json", ok, 404, "no_route"},
		{"wrong method", "DELETE", orders + "orders/order-1", "", "", 404, "no_route"},
		{"order not found", "GET", orders + "orders/order-0123", "", "", 404, "order_not_found"},
		{"odd characters in an order id", "GET", orders + "orders/order%3Cscript%3E", "", "", 400, "invalid_order_id"},
		// daprd decodes %2F, so the app sees more path segments: no route.
		{"encoded traversal in an order id", "GET", orders + "orders/..%2F..%2Fetc%2Fpasswd", "", "", 404, "no_route"},
		{"dots as order id", "GET", orders + "orders/..", "", "", 404, "no_route"},
		{"an internal key as order id", "GET", orders + "orders/outbox-owners", "", "", 404, "order_not_found"},
		{"inventory: negative quantity", "POST", inventory + "check", "application/json", `{"productId":"product-1","quantity":-5}`, 400, "invalid_quantity"},
		{"inventory: check with a traversal order id", "POST", inventory + "check", "application/json", `{"orderId":"../x","productId":"product-1","quantity":1}`, 400, "invalid_order_id"},
		// An internal route answers an outsider 403 before it reads the body.
		{"inventory: confirmation from outside", "POST", inventory + "confirm", "application/json", `{"orders":[{"productId":"product-1"}]}`, 403, "internal_route"},
		{"inventory: empty confirmation from outside", "POST", inventory + "confirm", "application/json", `{"orders":[]}`, 403, "internal_route"},
		{"binding payload that is not JSON", "POST", orders + "outbox-sweep", "application/json", `{"x":`, 400, "invalid_json"},
	}
	client := &http.Client{Timeout: 20 * time.Second}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(c.method, c.url, strings.NewReader(c.body))
			require.NoError(t, err)
			if c.contentType != "" {
				req.Header.Set("Content-Type", c.contentType)
			}
			resp, err := client.Do(req)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, c.status, resp.StatusCode, "%s", b)
			if strings.HasPrefix(c.url, inventory) {
				// The inventory runs over the gRPC app protocol: daprd turns
				// its error into google.rpc.Status JSON (sent as text/plain)
				// and keeps our code as the ErrorInfo reason.
				var st struct {
					Message string
					Details []struct{ Reason string }
				}
				require.NoError(t, json.Unmarshal(b, &st), "the answer is JSON: %q", b)
				assert.NotEmpty(t, st.Message, "the answer says what is wrong")
				require.NotEmpty(t, st.Details, "%s", b)
				assert.Equal(t, c.code, st.Details[0].Reason)
			} else {
				assert.Contains(t, resp.Header.Get("Content-Type"), "application/json")
				var e struct{ Error, Code string }
				require.NoError(t, json.Unmarshal(b, &e), "the answer is JSON: %q", b)
				assert.Equal(t, c.code, e.Code)
				assert.NotEmpty(t, e.Error, "the answer says what is wrong")
			}
			assert.NotContains(t, string(b), "goroutine ", "no stack trace")
			assert.NotContains(t, string(b), "rpc error", "no internal error text")
		})
	}

	// daprd parses and re-encodes a published CloudEvent before delivery: it
	// fills in or rewrites id and specversion, keeps the last of duplicate
	// keys and replaces bytes that are not UTF-8. Such events never reach an
	// app through it as sent; runtime/dapr's transport tests cover them.
	t.Run("a bad CloudEvent is dead-lettered, not emailed", func(t *testing.T) {
		publish := s.notification.daprd.URL("/v1.0/publish/pubsub/" + s.topic)
		for id, ce := range map[string]string{
			"bad-data": `{"specversion":"1.0","id":"bad-data","source":"t","type":"t","datacontenttype":"application/json","data":{"orderId":"order-x","quantity":"many"}}`,
			"bad-id":   `{"specversion":"1.0","id":"bad-id","source":"t","type":"t","datacontenttype":"application/json","data":{"orderId":"order/../x","customerEmail":"a@example.com"}}`,
		} {
			req, _ := http.NewRequest("POST", publish, strings.NewReader(ce))
			req.Header.Set("Content-Type", "application/cloudevents+json")
			resp, err := client.Do(req)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 == 4 { // the sidecar refused it itself
				assert.True(t, json.Valid(b), "%s: %s", id, b)
				continue
			}
			require.Equal(t, http.StatusNoContent, resp.StatusCode, "%s: %s", id, b)
			url := s.notification.daprd.URL("/v1.0/state/notification-state/deadletter-" + id)
			assert.Eventually(t, func() bool { st, _ := get(t, url); return st == http.StatusOK }, 20*time.Second, 100*time.Millisecond, "%s is dead-lettered", id)
		}
	})

	// Nothing was stored, taken or sent, and every app still answers.
	assert.Equal(t, 10, s.stock(t, "product-1"))
	files, err := os.ReadDir(s.orderDir)
	require.NoError(t, err)
	assert.Empty(t, files, "no order stored")
	assert.Empty(t, s.emails(t), "no email sent")
	for _, a := range []*shopApp{s.order, s.inventory, s.notification} {
		status, _ := get(t, a.daprd.URL("/v1.0/healthz"))
		assert.Equal(t, http.StatusNoContent, status, "%s is alive", a.appID)
	}
	status, body := s.placeOrder(t, ok)
	assert.Equal(t, http.StatusOK, status, "a good order still works: %s", body)
}
