package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"
)

// Options configure an App.
type Options struct {
	// Logger receives the runtime's structured logs; nil discards them.
	Logger *slog.Logger
	// Middleware wraps every registered handler, outermost first.
	Middleware []Middleware
	// InternalToken is the credential Internal routes require in the
	// InternalTokenHeader. Empty, Internal routes refuse every call.
	InternalToken string
}

// Subscription is a programmatic pub/sub subscription, as served on
// GET /dapr/subscribe (HTTP) or ListTopicSubscriptions (gRPC).
type Subscription struct {
	Pubsub          string            `json:"pubsubname"`
	Topic           string            `json:"topic"`
	Route           string            `json:"route"`                     // HTTP path daprd POSTs to, e.g. "/orders"
	DeadLetterTopic string            `json:"deadLetterTopic,omitempty"` // where DROPped events go
	Metadata        map[string]string `json:"metadata,omitempty"`        // e.g. {"rawPayload": "true"}
	// Bulk, when set, asks daprd for Dapr's bulk subscribe: it hands the app
	// up to MaxMessages events in one call instead of one call per event,
	// which saves a sidecar hop per event under load. The handler still sees
	// one event at a time (the transport runs a batch's events concurrently
	// and answers each one's outcome), so it is a deployment choice, not a
	// change to the function. Only the gRPC app protocol declares it: over
	// HTTP the events keep arriving one per request.
	Bulk *BulkDelivery `json:"-"`
}

// BulkDelivery configures a bulk subscription (see Subscription.Bulk).
type BulkDelivery struct {
	// MaxMessages is the most events in one delivery; 0 means daprd's
	// default, 100.
	MaxMessages int
	// MaxAwait is how long daprd holds an event to fill a batch before it
	// delivers a partial one; 0 means daprd's default, 1 s. daprd counts it
	// in whole milliseconds. While one batch is with the app, daprd fills
	// the next, so under load batches fill without waiting.
	MaxAwait time.Duration
}

func (b *BulkDelivery) validate() error {
	switch {
	case b == nil:
		return nil
	case b.MaxMessages < 0 || b.MaxMessages > math.MaxInt32:
		return fmt.Errorf("bulk delivery: MaxMessages %d must be 0 (daprd's default) or a positive count", b.MaxMessages)
	case b.MaxAwait < 0 || (b.MaxAwait > 0 && b.MaxAwait < time.Millisecond) || b.MaxAwait.Milliseconds() > math.MaxInt32:
		return fmt.Errorf("bulk delivery: MaxAwait %s must be 0 (daprd's default) or at least 1ms", b.MaxAwait)
	}
	return nil
}

// Component names a Dapr component a registered function needs, checked
// against the sidecar's metadata at start.
type Component struct {
	Kind string // "state", "pubsub" or "bindings"
	Name string // the component's metadata.name, e.g. "statestore"
	Type string // the component's type when known, e.g. "state.redis"
}

// Is reports whether c and o name the same component (kind and name).
func (c Component) Is(o Component) bool { return c.Kind == o.Kind && c.Name == o.Name }

// String renders "state/statestore".
func (c Component) String() string { return c.Kind + "/" + c.Name }

type topicEntry struct {
	sub      Subscription
	name     string    // "pubsub/topic", for logs
	handlers []Handler // one per function subscribed; more than one fan out
	memo     *fanoutMemo
}

// App is one registry of functions: invocation routes, topic subscriptions
// and input bindings. Build it with New, register with Invoke, Topic and
// Binding, then serve it with package runtime/dapr. Registration is not
// safe for concurrent use; dispatch is.
type App struct {
	log        *slog.Logger
	middleware []Middleware
	internal   string // Options.InternalToken
	routes     []*route
	topics     []*topicEntry
	bindings   map[string]Handler
	components []Component
	errs       []error
}

// New returns an empty App.
func New(opts Options) *App {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &App{log: log, middleware: opts.Middleware, internal: opts.InternalToken, bindings: map[string]Handler{}}
}

// Logger returns the App's logger.
func (a *App) Logger() *slog.Logger { return a.log }

// Err reports every registration mistake (bad or overlapping patterns,
// duplicate topics or bindings). Transports refuse to serve an App with one.
func (a *App) Err() error { return errors.Join(a.errs...) }

func (a *App) wrap(h Handler) Handler {
	for i := len(a.middleware) - 1; i >= 0; i-- {
		h = a.middleware[i](h)
	}
	return h
}

// Handle registers h for invocations matching pattern, "METHOD /path" with
// {name} wildcards: "GET /orders/{id}". The route is Public unless access
// says Internal. Most callers use the typed Invoke.
func (a *App) Handle(pattern string, h Handler, access ...Access) {
	method, segs, err := parsePattern(pattern)
	if err != nil {
		a.errs = append(a.errs, err)
		return
	}
	acc := Public
	if len(access) > 1 {
		a.errs = append(a.errs, fmt.Errorf("route %q: one access level, got %d", pattern, len(access)))
		return
	} else if len(access) == 1 {
		acc = access[0]
	}
	if acc != Public && acc != Internal {
		a.errs = append(a.errs, fmt.Errorf("route %q: unknown access level %d: want runtime.Public or runtime.Internal", pattern, acc))
		return
	}
	if acc == Internal {
		h = internalOnly(h, a.internal, pattern)
	}
	r := &route{method: method, segments: segs, pattern: pattern, access: acc, handler: a.wrap(h)}
	for _, o := range a.routes {
		if o.overlaps(r) {
			a.errs = append(a.errs, fmt.Errorf("route %q overlaps %q: give them distinct paths", pattern, o.pattern))
			return
		}
	}
	for name := range a.bindings {
		if r.overlaps(&route{method: "POST", segments: []string{name}}) {
			a.errs = append(a.errs, fmt.Errorf("route %q collides with input binding %q (daprd POSTs its events to /%s)", pattern, name, name))
			return
		}
	}
	for _, t := range a.topics {
		if method == "POST" && r.overlaps(&route{method: "POST", segments: splitPath(t.sub.Route)}) {
			a.errs = append(a.errs, fmt.Errorf("route %q collides with the route %q of topic %s/%s: choose another topic route", pattern, t.sub.Route, t.sub.Pubsub, t.sub.Topic))
			return
		}
	}
	a.routes = append(a.routes, r)
}

// HandleTopic registers h for sub. Most callers use the typed Topic.
//
// Several functions may subscribe to one pubsub/topic in one App: they share
// one Dapr subscription (the first registration's route, dead-letter topic,
// metadata and bulk settings; a later one leaves those fields empty or
// repeats them) and each gets every event (see Dispatch for the outcome).
func (a *App) HandleTopic(sub Subscription, h Handler) {
	if sub.Pubsub == "" || sub.Topic == "" {
		a.errs = append(a.errs, fmt.Errorf("subscription %+v: pubsub and topic are required", sub))
		return
	}
	for _, t := range a.topics {
		if t.sub.Pubsub == sub.Pubsub && t.sub.Topic == sub.Topic {
			if err := t.sub.shares(sub); err != nil {
				a.errs = append(a.errs, err)
				return
			}
			t.handlers = append(t.handlers, a.wrap(h))
			if t.memo == nil {
				t.memo = newFanoutMemo(fanoutMemoSize)
			}
			return
		}
	}
	if err := sub.Bulk.validate(); err != nil {
		a.errs = append(a.errs, fmt.Errorf("topic %s/%s: %w", sub.Pubsub, sub.Topic, err))
		return
	}
	if sub.Route == "" {
		sub.Route = "/" + sub.Topic
	}
	if !strings.HasPrefix(sub.Route, "/") {
		sub.Route = "/" + sub.Route
	}
	for _, t := range a.topics {
		if t.sub.Route == sub.Route {
			a.errs = append(a.errs, fmt.Errorf("topics %s/%s and %s/%s share route %q: give each its own", t.sub.Pubsub, t.sub.Topic, sub.Pubsub, sub.Topic, sub.Route))
			return
		}
	}
	if segs := splitPath(sub.Route); len(segs) == 1 && a.bindings[segs[0]] != nil {
		a.errs = append(a.errs, fmt.Errorf("route %q of topic %s/%s collides with input binding %q", sub.Route, sub.Pubsub, sub.Topic, segs[0]))
		return
	}
	probe := &route{method: "POST", segments: splitPath(sub.Route)}
	for _, r := range a.routes {
		if r.overlaps(probe) {
			a.errs = append(a.errs, fmt.Errorf("route %q of topic %s/%s collides with invocation route %q: choose another topic route", sub.Route, sub.Pubsub, sub.Topic, r.pattern))
			return
		}
	}
	a.topics = append(a.topics, &topicEntry{sub: sub, name: sub.Pubsub + "/" + sub.Topic, handlers: []Handler{a.wrap(h)}})
	a.Requires(Component{Kind: "pubsub", Name: sub.Pubsub})
}

// HandleBinding registers h for the input binding name. Most callers use the
// typed Binding.
func (a *App) HandleBinding(name string, h Handler) {
	if name == "" || strings.Contains(name, "/") {
		a.errs = append(a.errs, fmt.Errorf("binding name %q: want a component name such as \"restock\"", name))
		return
	}
	if _, dup := a.bindings[name]; dup {
		a.errs = append(a.errs, fmt.Errorf("binding %q registered twice", name))
		return
	}
	// daprd POSTs binding events to /<name>: it must not be anything else's.
	probe := &route{method: "POST", segments: []string{name}}
	for _, r := range a.routes {
		if r.overlaps(probe) {
			a.errs = append(a.errs, fmt.Errorf("binding %q collides with invocation route %q: rename the binding component", name, r.pattern))
			return
		}
	}
	for _, t := range a.topics {
		if t.sub.Route == "/"+name {
			a.errs = append(a.errs, fmt.Errorf("binding %q collides with the route of topic %s/%s", name, t.sub.Pubsub, t.sub.Topic))
			return
		}
	}
	a.bindings[name] = a.wrap(h)
	a.Requires(Component{Kind: "bindings", Name: name})
}

// Requires declares a component a registered function needs. The dapr
// transport checks the sidecar has each one before it reports ready.
func (a *App) Requires(cs ...Component) {
	for _, c := range cs {
		if !slices.ContainsFunc(a.components, c.Is) {
			a.components = append(a.components, c)
		}
	}
}

// Components returns the components the App's functions need.
func (a *App) Components() []Component { return slices.Clone(a.components) }

// Routes lists the App's invocation routes with who may call each, in
// registration order.
func (a *App) Routes() []RouteInfo {
	out := make([]RouteInfo, len(a.routes))
	for i, r := range a.routes {
		out[i] = RouteInfo{Pattern: r.pattern, Access: r.access}
	}
	return out
}

// RouteInfo describes one registered invocation route.
type RouteInfo struct {
	Pattern string // "POST /lease"
	Access  Access
}

// Subscriptions returns the App's topic subscriptions.
func (a *App) Subscriptions() []Subscription {
	subs := make([]Subscription, len(a.topics))
	for i, t := range a.topics {
		subs[i] = t.sub
	}
	return subs
}

// Bindings returns the names of the App's input bindings, sorted.
func (a *App) Bindings() []string {
	names := make([]string, 0, len(a.bindings))
	for n := range a.bindings {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// HasBinding reports whether name is a registered input binding.
func (a *App) HasBinding(name string) bool { _, ok := a.bindings[name]; return ok }

// TopicRoute returns the subscription served at HTTP path route.
func (a *App) TopicRoute(route string) (Subscription, bool) {
	for _, t := range a.topics {
		if t.sub.Route == route {
			return t.sub, true
		}
	}
	return Subscription{}, false
}

// Dispatch routes m to its handler and runs it: invocations by Method and
// Path, topics by m.Event's Pubsub and Topic, bindings by Name. A delivery
// nothing is registered for answers a NotFound error.
func (a *App) Dispatch(ctx context.Context, m *Message) Reply {
	switch m.Kind {
	case KindInvoke:
		for _, r := range a.routes {
			params, ok := r.match(m.Method, m.Path, m.params[:0])
			if ok {
				m.params = params
				m.Name = r.pattern
				return r.handler.Handle(ctx, m)
			}
		}
		return Reply{Err: NotFound("no_route", "no function handles %s /%s", m.Method, m.Path)}
	case KindTopic:
		if m.Event != nil {
			for _, t := range a.topics {
				if t.sub.Pubsub == m.Event.Pubsub && t.sub.Topic == m.Event.Topic {
					m.Name = t.name
					if len(t.handlers) == 1 {
						return t.handlers[0].Handle(ctx, m)
					}
					return t.fanout(ctx, m)
				}
			}
			return Reply{Err: NotFound("no_subscription", "no function subscribes to %s/%s", m.Event.Pubsub, m.Event.Topic)}
		}
		return Reply{Err: Invalid("no_event", "topic delivery without an event")}
	case KindBinding:
		if h, ok := a.bindings[m.Name]; ok {
			return h.Handle(ctx, m)
		}
		return Reply{Err: NotFound("no_binding", "no function handles input binding %q", m.Name)}
	}
	return Reply{Err: Invalid("bad_kind", "unknown trigger kind %d", m.Kind)}
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}
