package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"
)

// Recover turns a panicking handler into an internal error (500 / RETRY)
// and logs the stack; the caller never sees it.
func Recover(log *slog.Logger) Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, m *Message) (r Reply) {
			defer func() {
				if p := recover(); p != nil {
					log.ErrorContext(ctx, "handler panicked", "kind", m.Kind.String(), "name", m.Name, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
					r = Reply{Err: fmt.Errorf("handler %s panicked: %v", m.Name, p)}
				}
			}()
			return next.Handle(ctx, m)
		})
	}
}

// Logging logs every delivery: at Debug when it succeeded, at Warn when it
// failed with a Drop outcome and at Error when it will be retried.
func Logging(log *slog.Logger) Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, m *Message) Reply {
			start := time.Now()
			r := next.Handle(ctx, m)
			e := Classify(r.Err)
			if e == nil {
				if log.Enabled(ctx, slog.LevelDebug) {
					log.DebugContext(ctx, "handled", "kind", m.Kind.String(), "name", m.Name, "duration", time.Since(start))
				}
				return r
			}
			level := slog.LevelWarn
			if e.Outcome == Retry {
				level = slog.LevelError
			}
			log.Log(ctx, level, "handler failed", "kind", m.Kind.String(), "name", m.Name,
				"outcome", e.Outcome.String(), "status", e.Status, "code", e.Code, "error", r.Err.Error(), "duration", time.Since(start))
			return r
		})
	}
}

// BodyLimit rejects deliveries whose body exceeds max bytes with a 413
// (DROP for events) before the handler decodes anything.
func BodyLimit(max int) Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, m *Message) Reply {
			if len(m.Body) > max {
				return Reply{Err: &Error{Outcome: Drop, Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
					Message: fmt.Sprintf("body exceeds %d bytes", max)}}
			}
			return next.Handle(ctx, m)
		})
	}
}

type traceKey struct{}

// TraceContext is the W3C trace context of a delivery.
type TraceContext struct {
	TraceParent string
	TraceState  string
}

// WithTraceContext returns ctx carrying tc; outgoing sidecar calls made with
// it send the same traceparent, so one trace spans the whole order.
func WithTraceContext(ctx context.Context, tc TraceContext) context.Context {
	return context.WithValue(ctx, traceKey{}, tc)
}

// TraceFrom returns the trace context carried by ctx, if any.
func TraceFrom(ctx context.Context) (TraceContext, bool) {
	tc, ok := ctx.Value(traceKey{}).(TraceContext)
	return tc, ok && tc.TraceParent != ""
}

// Trace puts the delivery's traceparent (the CloudEvent's for topics, the
// traceparent header or metadata otherwise) into the handler's context.
func Trace() Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, m *Message) Reply {
			var tc TraceContext
			if m.Event != nil && m.Event.TraceParent != "" {
				tc = TraceContext{TraceParent: m.Event.TraceParent, TraceState: m.Event.TraceState}
			} else if tp := m.Get("traceparent"); tp != "" {
				tc = TraceContext{TraceParent: tp, TraceState: m.Get("tracestate")}
			}
			if tc.TraceParent != "" {
				ctx = WithTraceContext(ctx, tc)
			}
			return next.Handle(ctx, m)
		})
	}
}

// Defaults is the middleware every deployed app uses, outermost first:
// recovery, logging, trace context and a body limit of maxBody bytes.
func Defaults(log *slog.Logger, maxBody int) []Middleware {
	return []Middleware{Recover(log), Logging(log), Trace(), BodyLimit(maxBody)}
}
