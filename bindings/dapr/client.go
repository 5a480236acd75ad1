package dapr

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	daprc "github.com/dapr/go-sdk/client"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/runtime"
)

// Config configures a Client.
type Config struct {
	// Address of daprd's gRPC API, e.g. "127.0.0.1:50001".
	Address string
	// APIToken is sent as dapr-api-token on every call (DAPR_API_TOKEN).
	APIToken string
	// StateStore is the state component Get/Save/... use, e.g. "statestore".
	StateStore string
	// CallTimeout bounds calls whose context has no deadline (default 10 s).
	CallTimeout time.Duration
	// InternalToken, when set, goes with every service invocation of an
	// app of InternalAppIDs as runtime.InternalTokenHeader, so the called
	// app's Internal routes answer (INTERNAL_TOKEN).
	InternalToken string
	// InternalAppIDs are the deployment's own apps (INTERNAL_APP_IDS): the
	// credential goes to them and to no other app this client invokes.
	InternalAppIDs []string
}

// Client talks to one sidecar. It implements bindings.StateStore,
// bindings.Publisher, bindings.OutputBinding, bindings.Invoker and
// bindings.Components, and is safe for concurrent use.
type Client struct {
	sdk      daprc.Client
	conn     *grpc.ClientConn
	store    string
	internal string          // Config.InternalToken
	peers    map[string]bool // Config.InternalAppIDs
}

var (
	_ bindings.StateStore    = (*Client)(nil)
	_ bindings.Publisher     = (*Client)(nil)
	_ bindings.OutputBinding = (*Client)(nil)
	_ bindings.Invoker       = (*Client)(nil)
	_ bindings.Components    = (*Client)(nil)
)

// New connects lazily to the sidecar at cfg.Address; no call is made here.
func New(cfg Config) (*Client, error) {
	if cfg.Address == "" {
		return nil, errors.New("sidecar gRPC address is empty: set DAPR_GRPC_PORT (and DAPR_HOST)")
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 10 * time.Second
	}
	conn, err := grpc.NewClient(cfg.Address,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(outgoing(cfg.CallTimeout, cfg.APIToken)),
		// The sidecar is local and may start after the app: calls wait for
		// the connection (within their deadline) instead of failing fast,
		// and reconnects are retried quickly rather than with gRPC's
		// default backoff of up to two minutes.
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("sidecar gRPC client for %s: %w", cfg.Address, err)
	}
	// The go-sdk client sends no token over a connection it did not dial:
	// outgoing adds it to every call.
	sdk := daprc.NewClientWithConnection(conn)
	peers := map[string]bool{}
	for _, id := range cfg.InternalAppIDs {
		peers[id] = true
	}
	return &Client{sdk: sdk, conn: conn, store: cfg.StateStore, internal: cfg.InternalToken, peers: peers}, nil
}

// Close closes the connection to the sidecar.
func (c *Client) Close() error { return c.conn.Close() }

// WithStateStore returns a Client over the same connection whose state
// calls go to the state component name. Closing either closes both.
func (c *Client) WithStateStore(name string) *Client {
	return &Client{sdk: c.sdk, conn: c.conn, store: name, internal: c.internal, peers: c.peers}
}

// outgoing bounds calls without a deadline, sends the API token and
// forwards the trace context.
func outgoing(timeout time.Duration, token string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "dapr-api-token", token)
		}
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		if tc, ok := runtime.TraceFrom(ctx); ok {
			ctx = metadata.AppendToOutgoingContext(ctx, "traceparent", tc.TraceParent)
			if tc.TraceState != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "tracestate", tc.TraceState)
			}
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

var jsonMeta = map[string]string{"contentType": "application/json"}

// Get implements bindings.StateStore.
func (c *Client) Get(ctx context.Context, key string) (bindings.StateItem, error) {
	it, err := c.sdk.GetState(ctx, c.store, key, nil)
	if err != nil {
		return bindings.StateItem{}, fmt.Errorf("get state %s/%s: %w", c.store, key, err)
	}
	return bindings.StateItem{Key: key, Value: it.Value, ETag: it.Etag, Found: len(it.Value) > 0 || it.Etag != ""}, nil
}

// BulkGet implements bindings.StateStore.
func (c *Client) BulkGet(ctx context.Context, keys []string) ([]bindings.StateItem, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	items, err := c.sdk.GetBulkState(ctx, c.store, keys, nil, 8)
	if err != nil {
		return nil, fmt.Errorf("bulk get state %s (%d keys): %w", c.store, len(keys), err)
	}
	byKey := make(map[string]*daprc.BulkStateItem, len(items))
	for _, it := range items {
		byKey[it.Key] = it
	}
	out := make([]bindings.StateItem, len(keys))
	for i, k := range keys {
		out[i] = bindings.StateItem{Key: k}
		if it, ok := byKey[k]; ok {
			if it.Error != "" {
				return nil, fmt.Errorf("bulk get state %s/%s: %s", c.store, k, it.Error)
			}
			out[i] = bindings.StateItem{Key: k, Value: it.Value, ETag: it.Etag, Found: len(it.Value) > 0 || it.Etag != ""}
		}
	}
	return out, nil
}

// Save implements bindings.StateStore with first-write concurrency.
func (c *Client) Save(ctx context.Context, key string, value []byte, etag string) error {
	err := c.sdk.SaveStateWithETag(ctx, c.store, key, value, etag, jsonMeta, daprc.WithConcurrency(daprc.StateConcurrencyFirstWrite))
	return c.writeError(ctx, "save", key, etag, err)
}

// Delete implements bindings.StateStore.
func (c *Client) Delete(ctx context.Context, key, etag string) error {
	var tag *daprc.ETag
	if etag != "" {
		tag = &daprc.ETag{Value: etag}
	}
	err := c.sdk.DeleteStateWithETag(ctx, c.store, key, tag, nil, &daprc.StateOptions{Concurrency: daprc.StateConcurrencyFirstWrite})
	if status.Code(err) == codes.Aborted {
		return bindings.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("delete state %s/%s: %w", c.store, key, err)
	}
	return nil
}

// Transact implements bindings.StateStore.
func (c *Client) Transact(ctx context.Context, ops []bindings.StateOp) error {
	tx := make([]*daprc.StateOperation, len(ops))
	opts := &daprc.StateOptions{Concurrency: daprc.StateConcurrencyFirstWrite}
	for i, op := range ops {
		item := &daprc.SetStateItem{Key: op.Key, Value: op.Value, Options: opts}
		if op.TTL > 0 {
			item.Metadata = map[string]string{"ttlInSeconds": strconv.FormatInt(int64((op.TTL+time.Second-1)/time.Second), 10)}
		}
		if op.ETag != "" {
			item.Etag = &daprc.ETag{Value: op.ETag}
		}
		typ := daprc.StateOperationTypeUpsert
		if op.Delete {
			typ, item.Value = daprc.StateOperationTypeDelete, nil
		}
		tx[i] = &daprc.StateOperation{Type: typ, Item: item}
	}
	err := c.sdk.ExecuteStateTransaction(ctx, c.store, nil, tx)
	if err == nil {
		return nil
	}
	// Stores report a failed condition differently: an Aborted status, an
	// etag error, or (Redis) "failed to set key" / "failed to delete".
	if msg := err.Error(); status.Code(err) == codes.Aborted || strings.Contains(msg, "etag") ||
		strings.Contains(msg, "failed to set key") || strings.Contains(msg, "failed to delete") {
		return fmt.Errorf("state transaction on %s: %w", c.store, bindings.ErrConflict)
	}
	return fmt.Errorf("state transaction on %s (%d ops): %w", c.store, len(ops), err)
}

// writeError turns a save failure into ErrConflict where it is one. Stores
// differ in how a create of an existing key fails (redis: a plain error), so
// a failed create re-reads the key to tell a conflict from a failure.
func (c *Client) writeError(ctx context.Context, op, key, etag string, err error) error {
	if err == nil {
		return nil
	}
	if status.Code(err) == codes.Aborted {
		return bindings.ErrConflict
	}
	if etag == "" {
		if it, gerr := c.Get(ctx, key); gerr == nil && it.Found {
			return bindings.ErrConflict
		}
	} else if strings.Contains(err.Error(), "etag") {
		return bindings.ErrConflict
	}
	return fmt.Errorf("%s state %s/%s: %w", op, c.store, key, err)
}

// Publish implements bindings.Publisher: the event goes to the sidecar as a
// structured CloudEvent (application/cloudevents+json), so daprd keeps its
// id, source and type, and carries the caller's traceparent.
func (c *Client) Publish(ctx context.Context, pubsub, topic string, ev bindings.Event) error {
	body, err := bindings.EncodeCloudEvent(ctx, ev)
	if err != nil {
		return err
	}
	err = c.sdk.PublishEvent(ctx, pubsub, topic, body, daprc.PublishEventWithContentType(runtime.ContentTypeCloudEvent))
	if err != nil {
		return fmt.Errorf("publish %s to %s/%s: %w", ev.ID, pubsub, topic, err)
	}
	return nil
}

// InvokeBinding implements bindings.OutputBinding.
func (c *Client) InvokeBinding(ctx context.Context, name, operation string, data []byte, md map[string]string) ([]byte, error) {
	out, err := c.sdk.InvokeBinding(ctx, &daprc.InvokeBindingRequest{Name: name, Operation: operation, Data: data, Metadata: md})
	if err != nil {
		return nil, fmt.Errorf("output binding %s (%s): %w", name, operation, err)
	}
	return out.Data, nil
}

// Invoke implements bindings.Invoker. A non-2xx answer of the target app
// comes back from daprd as a gRPC status carrying the HTTP code; it is
// returned as *bindings.InvokeError with that code. To an app of the
// deployment, the internal credential, when configured, travels as gRPC
// metadata, which daprd hands the called app as a header (HTTP) or metadata
// (gRPC); another app never sees it.
func (c *Client) Invoke(ctx context.Context, appID, verb, method string, body []byte) ([]byte, error) {
	if c.internal != "" && c.peers[appID] {
		ctx = metadata.AppendToOutgoingContext(ctx, runtime.InternalTokenHeader, c.internal)
	}
	out, err := c.sdk.InvokeMethodWithContent(ctx, appID, method, verb, &daprc.DataContent{Data: body, ContentType: "application/json"})
	if err == nil {
		return out, nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return nil, fmt.Errorf("invoke %s/%s: %w", appID, method, err)
	}
	ie := &bindings.InvokeError{AppID: appID, Method: method, Status: httpStatus(st), Body: st.Message()}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if msg := info.GetMetadata()["http.error_message"]; msg != "" {
				ie.Body = msg
			}
		}
	}
	return nil, ie
}

func httpStatus(st *status.Status) int {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if n, err := strconv.Atoi(info.GetMetadata()["http.code"]); err == nil {
				return n
			}
		}
	}
	switch st.Code() {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return 400
	case codes.NotFound:
		return 404
	case codes.Aborted, codes.AlreadyExists:
		return 409
	case codes.Unauthenticated:
		return 401
	case codes.PermissionDenied:
		return 403
	case codes.DeadlineExceeded:
		return 504
	case codes.Unavailable:
		return 503
	}
	return 500
}

// LoadedComponents implements bindings.Components and dapr.Sidecar.
func (c *Client) LoadedComponents(ctx context.Context) ([]runtime.Component, error) {
	md, err := c.sdk.GetMetadata(ctx)
	if err != nil {
		return nil, fmt.Errorf("sidecar metadata: %w", err)
	}
	out := make([]runtime.Component, 0, len(md.RegisteredComponents))
	for _, rc := range md.RegisteredComponents {
		kind, _, _ := strings.Cut(rc.Type, ".")
		out = append(out, runtime.Component{Kind: kind, Name: rc.Name, Type: rc.Type})
	}
	return out, nil
}
