package dapr

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/daprfn/shop/runtime"
)

// HTTPOptions configure the HTTP transport.
type HTTPOptions struct {
	// AppToken, when set, must arrive in every request's dapr-api-token
	// header (daprd sends APP_API_TOKEN there); health probes are exempt.
	AppToken string
	// MaxBody caps how many body bytes are read (default 4 MiB, as daprd).
	MaxBody int64
	// Ready reports readiness for GET /readyz; nil means always ready.
	Ready func() bool
}

// NewHTTPHandler returns the http.Handler that serves app to daprd over the
// HTTP app protocol, plus GET /healthz and GET /readyz.
func NewHTTPHandler(app *runtime.App, opts HTTPOptions) http.Handler {
	if opts.MaxBody <= 0 {
		opts.MaxBody = 4 << 20
	}
	subs, _ := json.Marshal(app.Subscriptions())
	return &httpHandler{app: app, opts: opts, subscriptions: subs}
}

type httpHandler struct {
	app           *runtime.App
	opts          HTTPOptions
	subscriptions []byte
	messages      messagePool
}

func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch path {
	case "/healthz":
		writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`))
		return
	case "/readyz":
		if h.opts.Ready != nil && !h.opts.Ready() {
			writeJSON(w, http.StatusServiceUnavailable, []byte(`{"status":"not ready"}`))
			return
		}
		writeJSON(w, http.StatusOK, []byte(`{"status":"ready"}`))
		return
	}
	if h.opts.AppToken != "" {
		got := r.Header.Get("dapr-api-token")
		if subtle.ConstantTimeCompare([]byte(got), []byte(h.opts.AppToken)) != 1 {
			writeError(w, &runtime.Error{Status: http.StatusUnauthorized, Code: "unauthorized",
				Message: "missing or wrong dapr-api-token: the sidecar must run with the same APP_API_TOKEN as the app"})
			return
		}
	}
	switch {
	case path == "/dapr/subscribe" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, h.subscriptions)
		return
	case path == "/dapr/config" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, []byte(`{}`))
		return
	}
	name := strings.TrimPrefix(path, "/")
	if r.Method == http.MethodOptions {
		// daprd probes each input binding with OPTIONS /<name>; anything but
		// 404 means "this app handles it".
		if h.app.HasBinding(name) {
			w.WriteHeader(http.StatusOK)
			return
		}
		writeError(w, runtime.NotFound("no_binding", "no input binding %q", name))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, h.opts.MaxBody+1))
	if err != nil {
		writeError(w, runtime.Invalid("unreadable_body", "reading the body: %v", err))
		return
	}
	if int64(len(body)) > h.opts.MaxBody {
		if _, ok := h.app.TopicRoute(path); ok && r.Method == http.MethodPost {
			writeJSON(w, http.StatusOK, []byte(`{"status":"DROP"}`)) // poison: retrying cannot help
			return
		}
		writeError(w, &runtime.Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
			Message: fmt.Sprintf("body exceeds %d bytes: send less", h.opts.MaxBody)})
		return
	}
	m := h.messages.get()
	defer h.messages.put(m)
	m.Method, m.Path, m.Query, m.ContentType, m.Body, m.Header = r.Method, name, r.URL.RawQuery, r.Header.Get("Content-Type"), body, r.Header
	ctx := r.Context()
	if r.Method == http.MethodPost {
		if sub, ok := h.app.TopicRoute(path); ok {
			h.serveTopic(ctx, w, m, sub)
			return
		}
		if h.app.HasBinding(name) {
			m.Kind, m.Name = runtime.KindBinding, name
			reply := h.app.Dispatch(ctx, m)
			if e := runtime.Classify(reply.Err); e != nil {
				writeError(w, &runtime.Error{Status: bindingStatus(e), Code: e.Code, Message: e.Message})
				return
			}
			w.WriteHeader(http.StatusOK)
			return
		}
	}
	m.Kind = runtime.KindInvoke
	reply := h.app.Dispatch(ctx, m)
	if e := runtime.Classify(reply.Err); e != nil {
		writeError(w, e)
		return
	}
	ct := reply.ContentType
	if ct == "" {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(reply.Body)
}

func (h *httpHandler) serveTopic(ctx context.Context, w http.ResponseWriter, m *runtime.Message, sub runtime.Subscription) {
	meta, data, err := runtime.DecodeCloudEvent(m.Body, m.ContentType)
	if err != nil {
		// Undecodable envelope: poison, never redelivered.
		writeTopicStatus(w, runtime.Drop)
		return
	}
	// The route names the subscription. The envelope's topic extension can
	// differ: daprd keeps the original topic on events it dead-letters.
	meta.Pubsub, meta.Topic = sub.Pubsub, sub.Topic
	m.Kind, m.Event, m.Body = runtime.KindTopic, meta, data
	reply := h.app.Dispatch(ctx, m)
	writeTopicStatus(w, topicOutcome(reply.Err))
}

// topicOutcome maps a handler's error to the pub/sub outcome.
func topicOutcome(err error) runtime.Outcome {
	if e := runtime.Classify(err); e != nil {
		return e.Outcome
	}
	return runtime.Success
}

// bindingStatus maps a failed binding delivery to the HTTP status daprd sees:
// 500 asks queue-like bindings to redeliver, 400 says the payload is poison.
func bindingStatus(e *runtime.Error) int {
	if e.Outcome == runtime.Retry {
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

var topicBodies = map[runtime.Outcome][]byte{
	runtime.Success: []byte(`{"status":"SUCCESS"}`),
	runtime.Retry:   []byte(`{"status":"RETRY"}`),
	runtime.Drop:    []byte(`{"status":"DROP"}`),
}

func writeTopicStatus(w http.ResponseWriter, o runtime.Outcome) {
	writeJSON(w, http.StatusOK, topicBodies[o])
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeError(w http.ResponseWriter, e *runtime.Error) {
	writeJSON(w, e.Status, e.ErrorJSON())
}
