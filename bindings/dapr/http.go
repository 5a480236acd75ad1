package dapr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/runtime"
)

// HTTPConfig configures an HTTPInvoker.
type HTTPConfig struct {
	// Address of daprd's HTTP API, e.g. "127.0.0.1:3500".
	Address string
	// APIToken, InternalToken and InternalAppIDs are as in Config.
	APIToken       string
	InternalToken  string
	InternalAppIDs []string
	// CallTimeout bounds calls whose context has no deadline (default 10 s).
	CallTimeout time.Duration
}

// HTTPInvoker is a bindings.Invoker over daprd's HTTP API. Over gRPC daprd
// cuts the error answer of an invoked HTTP app to 63 bytes (the most a
// google.rpc.ErrorInfo value holds); over HTTP it passes the answer whole.
// A function that shows other functions' error messages to people invokes
// them this way.
type HTTPInvoker struct {
	base     string
	client   *http.Client
	timeout  time.Duration
	apiToken string
	internal string
	peers    map[string]bool
}

var _ bindings.Invoker = (*HTTPInvoker)(nil)

// maxAnswer is the largest answer an HTTPInvoker reads.
const maxAnswer = 4 << 20

// NewHTTPInvoker returns an invoker through the sidecar at cfg.Address; no
// call is made here.
func NewHTTPInvoker(cfg HTTPConfig) (*HTTPInvoker, error) {
	if cfg.Address == "" {
		return nil, errors.New("sidecar HTTP address is empty: set DAPR_HTTP_PORT (and DAPR_HOST)")
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 10 * time.Second
	}
	peers := map[string]bool{}
	for _, id := range cfg.InternalAppIDs {
		peers[id] = true
	}
	return &HTTPInvoker{base: "http://" + cfg.Address, client: &http.Client{}, timeout: cfg.CallTimeout,
		apiToken: cfg.APIToken, internal: cfg.InternalToken, peers: peers}, nil
}

// Invoke implements bindings.Invoker: verb on method of appID, with body as
// JSON. A non-2xx answer is a *bindings.InvokeError with the app's status
// and whole body. The internal credential goes to the deployment's apps
// only, as a header daprd passes on.
func (c *HTTPInvoker) Invoke(ctx context.Context, appID, verb, method string, body []byte) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	u := c.base + "/v1.0/invoke/" + url.PathEscape(appID) + "/method/" + method
	req, err := http.NewRequestWithContext(ctx, verb, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("invoke %s/%s: %w", appID, method, err)
	}
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.apiToken != "" {
		req.Header.Set("dapr-api-token", c.apiToken)
	}
	if c.internal != "" && c.peers[appID] {
		req.Header.Set(runtime.InternalTokenHeader, c.internal)
	}
	if tc, ok := runtime.TraceFrom(ctx); ok {
		req.Header.Set("traceparent", tc.TraceParent)
		if tc.TraceState != "" {
			req.Header.Set("tracestate", tc.TraceState)
		}
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("invoke %s/%s: %w", appID, method, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("invoke %s/%s: read the answer: %w", appID, method, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &bindings.InvokeError{AppID: appID, Method: method, Status: resp.StatusCode, Body: string(out)}
	}
	return out, nil
}
