package bindings

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/daprfn/shop/runtime"
)

// ErrConflict is returned when a conditional write loses: the ETag no longer
// matches, or a create found the key already there. Re-read and try again.
var ErrConflict = errors.New("state conflict: the item changed or already exists; re-read it and retry")

// StateItem is one key of a state store. A missing key has Found false.
type StateItem struct {
	Key   string
	Value []byte
	ETag  string
	Found bool
}

// StateOp is one operation of a transaction: an upsert or, with Delete, a
// delete. ETag "" on an upsert means "create: the key must not exist";
// otherwise the stored ETag must match. ETag "" on a delete is unconditional.
type StateOp struct {
	Key    string
	Value  []byte
	ETag   string
	Delete bool
	// TTL, when above 0, has the store forget the item that long after the
	// write (Dapr's ttlInSeconds, rounded up to a whole second).
	TTL time.Duration
}

// StateStore is a key/value store with optimistic concurrency. Every write is
// conditional: a Save with ETag "" creates the key and fails with ErrConflict
// when it exists; a Save with an ETag replaces the item only if that ETag is
// still current.
type StateStore interface {
	Get(ctx context.Context, key string) (StateItem, error)
	// BulkGet returns one item per key, in the order of keys.
	BulkGet(ctx context.Context, keys []string) ([]StateItem, error)
	Save(ctx context.Context, key string, value []byte, etag string) error
	// Delete removes key; etag "" deletes unconditionally.
	Delete(ctx context.Context, key, etag string) error
	// Transact applies ops in one request. If a conditional op fails, it
	// fails with ErrConflict; whether the other ops were applied depends on
	// the store: PostgreSQL and SQLite roll them back, Dapr's Redis store
	// does not (a Redis transaction has no rollback). Put a condition in a
	// transaction only where the other ops are safe either way.
	Transact(ctx context.Context, ops []StateOp) error
}

// Event is a CloudEvent to publish. ID, Source and Type are required; Data is
// encoded as JSON. The publisher adds the caller's traceparent.
type Event struct {
	ID      string
	Source  string
	Type    string
	Subject string
	Data    any
}

// Publisher publishes CloudEvents to a topic of a pub/sub component. The
// event keeps its ID end to end, so consumers can deduplicate by it.
type Publisher interface {
	Publish(ctx context.Context, pubsub, topic string, ev Event) error
}

// OutputBinding invokes an output binding component (localstorage, smtp,
// postgresql, ...) with an operation, a payload and metadata.
type OutputBinding interface {
	InvokeBinding(ctx context.Context, name, operation string, data []byte, metadata map[string]string) ([]byte, error)
}

// Invoker calls a method of another Dapr app (service invocation).
// A non-2xx answer is an *InvokeError.
type Invoker interface {
	Invoke(ctx context.Context, appID, verb, method string, body []byte) ([]byte, error)
}

// InvokeError is a non-2xx answer of an invoked app.
type InvokeError struct {
	AppID, Method string
	Status        int    // the HTTP status the app answered
	Body          string // its body (daprd may truncate it over gRPC)
}

// Error implements error.
func (e *InvokeError) Error() string {
	return fmt.Sprintf("invoke %s/%s: status %d: %s", e.AppID, e.Method, e.Status, e.Body)
}

// Components lists the components the sidecar has loaded.
type Components interface {
	LoadedComponents(ctx context.Context) ([]runtime.Component, error)
}

// ComponentType returns the type (e.g. "bindings.localstorage") of the loaded
// component kind/name, or an error that says where to add it.
func ComponentType(ctx context.Context, c Components, kind, name string) (string, error) {
	loaded, err := c.LoadedComponents(ctx)
	if err != nil {
		return "", fmt.Errorf("list sidecar components: %w", err)
	}
	want := runtime.Component{Kind: kind, Name: name}
	for _, l := range loaded {
		if l.Is(want) {
			return l.Type, nil
		}
	}
	return "", fmt.Errorf("component %s not loaded by the sidecar: add it to the resources path (components/) with this app-id in its scopes", want)
}

// TypeResolver returns the type of a component, e.g. "bindings.smtp".
type TypeResolver func(ctx context.Context) (string, error)

// FixedType is a TypeResolver for a type known up front.
func FixedType(t string) TypeResolver {
	return func(context.Context) (string, error) { return t, nil }
}

// TypeOf resolves the type of kind/name from the sidecar's metadata on first
// use and remembers it; a failed look-up is tried again next time.
func TypeOf(c Components, kind, name string) TypeResolver {
	var mu sync.Mutex
	var typ string
	return func(ctx context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if typ != "" {
			return typ, nil
		}
		t, err := ComponentType(ctx, c, kind, name)
		if err != nil {
			return "", err
		}
		typ = t
		return typ, nil
	}
}
