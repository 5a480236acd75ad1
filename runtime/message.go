package runtime

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Kind is the kind of trigger a delivery came from.
type Kind uint8

const (
	// KindInvoke is service invocation (/v1.0/invoke/<app>/method/...).
	KindInvoke Kind = iota + 1
	// KindTopic is a pub/sub topic delivery.
	KindTopic
	// KindBinding is an input binding event (cron, queues, ...).
	KindBinding
)

// String names the kind for logs.
func (k Kind) String() string {
	switch k {
	case KindInvoke:
		return "invoke"
	case KindTopic:
		return "topic"
	case KindBinding:
		return "binding"
	}
	return "unknown"
}

// Message is one delivery from the sidecar, the same for every transport.
// Transports fill it; typed adapters decode Body into a function's input.
type Message struct {
	Kind        Kind
	Name        string // the registration: route pattern, "pubsub/topic" or binding name
	Method      string // invocations: HTTP verb
	Path        string // invocations: path without the leading slash, e.g. "orders/order-1"
	Query       string // invocations: raw query string
	ContentType string
	Body        []byte            // invocation body, event data or binding payload
	Metadata    map[string]string // gRPC metadata or binding metadata, lower-case keys
	Header      http.Header       // HTTP transport: the request headers
	Event       *EventMeta        // topics only

	params []string // path values, pairs of name and value
}

// Reset clears m for reuse, keeping the capacity of its path values.
func (m *Message) Reset() {
	params := m.params[:0]
	*m = Message{params: params}
}

// PathValue returns the value of the wildcard {name} in the route pattern.
func (m *Message) PathValue(name string) string {
	for i := 0; i+1 < len(m.params); i += 2 {
		if m.params[i] == name {
			return m.params[i+1]
		}
	}
	return ""
}

// Get returns the header or metadata value name (case-insensitive).
func (m *Message) Get(name string) string {
	if m.Header != nil {
		if v := m.Header.Get(name); v != "" {
			return v
		}
	}
	return m.Metadata[strings.ToLower(name)]
}

// MetadataMap returns the metadata as a map, built from the headers for the
// HTTP transport.
func (m *Message) MetadataMap() map[string]string {
	if m.Header == nil {
		return m.Metadata
	}
	md := make(map[string]string, len(m.Header)+len(m.Metadata))
	for k, v := range m.Metadata {
		md[k] = v
	}
	for k, v := range m.Header {
		if len(v) > 0 {
			md[strings.ToLower(k)] = v[0]
		}
	}
	return md
}

// Reply is a handler's answer. Err nil means success; otherwise Classify(Err)
// decides the status the transport sends.
type Reply struct {
	Body        []byte
	ContentType string
	Err         error
}

// Handler handles one delivery. Transports call it; middleware wraps it.
type Handler interface {
	Handle(ctx context.Context, m *Message) Reply
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, m *Message) Reply

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, m *Message) Reply { return f(ctx, m) }

// Middleware wraps a Handler with cross-cutting behaviour.
type Middleware func(Handler) Handler

// Request is what an invocation function can read beyond its JSON body:
// path values, the query string and headers. Inputs that implement
// RequestBinder receive it after the body was decoded.
type Request struct{ m *Message }

// PathValue returns the value of the wildcard {name} of the route pattern.
func (r Request) PathValue(name string) string { return r.m.PathValue(name) }

// Query parses and returns the query string.
func (r Request) Query() url.Values {
	v, _ := url.ParseQuery(r.m.Query)
	return v
}

// Header returns a request header or gRPC metadata value (case-insensitive).
func (r Request) Header(name string) string { return r.m.Get(name) }

// RequestBinder is implemented by invocation inputs (on the pointer) that
// take values from the path, query or headers, e.g. GET /orders/{id}.
type RequestBinder interface {
	BindRequest(r Request) error
}

// Validator is implemented by inputs (on the value or pointer) that check
// themselves after decoding; a non-nil error is returned to the caller as a
// 400 (invocations) or DROP (events). Return an *Error to choose the code.
type Validator interface {
	Validate() error
}

// EventMeta is the CloudEvent envelope of a topic delivery.
type EventMeta struct {
	ID              string
	Source          string
	Type            string
	Subject         string
	SpecVersion     string
	DataContentType string
	Time            time.Time
	TraceParent     string
	TraceState      string
	Pubsub          string
	Topic           string
}

// Event is a topic delivery as a function sees it: the decoded data and the
// CloudEvent attributes around it.
type Event[T any] struct {
	EventMeta
	Data T
}

// BindingEvent is an input binding delivery: the decoded payload (zero when
// the binding sends none, as cron does) and the binding's metadata.
type BindingEvent[T any] struct {
	Name     string
	Data     T
	Metadata map[string]string
}

func marshalJSON(v any) ([]byte, error) { return json.Marshal(v) }
