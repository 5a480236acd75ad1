package dapr

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/runtime"
)

// The HTTP invoker calls daprd's invoke API with the API token, the
// internal credential for the deployment's apps only, and the trace
// context; an error answer comes back whole.
func TestHTTPInvokerPassesAnswersWhole(t *testing.T) {
	longError := `{"error":"customerEmail must be an address like name@example.com","code":"invalid_customer_email"}`
	var seen []*http.Request
	sidecar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		seen = append(seen, r)
		switch r.URL.Path {
		case "/v1.0/invoke/order-service/method/orders":
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, longError)
		default:
			_, _ = io.WriteString(w, `{"product-1":{"name":"Laptop","stock":8}}`)
		}
	}))
	defer sidecar.Close()
	inv, err := NewHTTPInvoker(HTTPConfig{Address: strings.TrimPrefix(sidecar.URL, "http://"), APIToken: "api", InternalToken: "internal", InternalAppIDs: []string{"order-service", "inventory-service"}})
	require.NoError(t, err)

	ctx := runtime.WithTraceContext(context.Background(), runtime.TraceContext{TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
	out, err := inv.Invoke(ctx, "inventory-service", "GET", "inventory", nil)
	require.NoError(t, err)
	assert.JSONEq(t, `{"product-1":{"name":"Laptop","stock":8}}`, string(out))

	_, err = inv.Invoke(ctx, "order-service", "POST", "orders", []byte(`{"customerEmail":"x"}`))
	var ie *bindings.InvokeError
	require.True(t, errors.As(err, &ie), "%v", err)
	assert.Equal(t, http.StatusBadRequest, ie.Status)
	assert.Equal(t, longError, ie.Body, "longer than the 63 bytes daprd keeps over gRPC")

	_, err = inv.Invoke(ctx, "someone-else", "GET", "x", nil)
	require.NoError(t, err)

	require.Len(t, seen, 3)
	for _, r := range seen {
		assert.Equal(t, "api", r.Header.Get("dapr-api-token"))
		assert.Equal(t, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", r.Header.Get("traceparent"))
	}
	assert.Equal(t, "GET", seen[0].Method)
	assert.Equal(t, "POST", seen[1].Method)
	assert.Equal(t, "application/json", seen[1].Header.Get("Content-Type"))
	body, _ := io.ReadAll(seen[1].Body)
	assert.JSONEq(t, `{"customerEmail":"x"}`, string(body))
	assert.Equal(t, "internal", seen[0].Header.Get(runtime.InternalTokenHeader))
	assert.Equal(t, "internal", seen[1].Header.Get(runtime.InternalTokenHeader))
	assert.Empty(t, seen[2].Header.Get(runtime.InternalTokenHeader), "another app never sees the credential")
}
