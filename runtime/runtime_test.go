package runtime_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/runtime"
)

type greetIn struct {
	Name  string `json:"name"`
	Times int    `json:"times"`
	id    string
}

func (g *greetIn) BindRequest(r runtime.Request) error { g.id = r.PathValue("id"); return nil }

func (g greetIn) Validate() error {
	if g.Times < 0 {
		return errors.New("times must not be negative")
	}
	return nil
}

type greetOut struct {
	Greeting string `json:"greeting"`
	ID       string `json:"id"`
}

func newGreeter(t *testing.T) *runtime.App {
	app := runtime.New(runtime.Options{})
	runtime.Invoke(app, "POST /greet/{id}", func(_ context.Context, in greetIn) (greetOut, error) {
		if in.Name == "boom" {
			return greetOut{}, errors.New("database password is hunter2")
		}
		if in.Name == "later" {
			return greetOut{}, runtime.RetryLater(errors.New("busy"))
		}
		return greetOut{Greeting: "hello " + in.Name, ID: in.id}, nil
	})
	require.NoError(t, app.Err())
	return app
}

func TestInvokeDecodesBindsValidatesAndEncodes(t *testing.T) {
	app := newGreeter(t)
	cases := []struct {
		name, path, body string
		status           int
		code, out        string
	}{
		{"ok", "greet/7", `{"name":"ada","times":1}`, 0, "", `{"greeting":"hello ada","id":"7"}`},
		{"empty body leaves the input zero", "greet/8", ``, 0, "", `{"greeting":"hello ","id":"8"}`},
		{"malformed JSON", "greet/1", `{"name":`, 400, "invalid_json", ""},
		{"wrong type names the field", "greet/1", `{"times":"x"}`, 400, "invalid_field", ""},
		{"validation failure", "greet/1", `{"times":-1}`, 400, "invalid_argument", ""},
		{"internal errors hide their cause", "greet/1", `{"name":"boom"}`, 500, "internal", ""},
		{"retry later", "greet/1", `{"name":"later"}`, 503, "retry_later", ""},
		{"no route", "nope", `{}`, 404, "no_route", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := app.Dispatch(context.Background(), &runtime.Message{Kind: runtime.KindInvoke, Method: "POST", Path: c.path, ContentType: "application/json", Body: []byte(c.body)})
			if c.status == 0 {
				require.NoError(t, r.Err)
				assert.JSONEq(t, c.out, string(r.Body))
				return
			}
			e := runtime.Classify(r.Err)
			require.NotNil(t, e)
			assert.Equal(t, c.status, e.Status)
			assert.Equal(t, c.code, e.Code)
			assert.NotContains(t, string(e.ErrorJSON()), "hunter2", "causes are logged, never shown")
		})
	}
}

func TestRegistrationErrorsAreReported(t *testing.T) {
	app := runtime.New(runtime.Options{})
	noop := func(context.Context, struct{}) (struct{}, error) { return struct{}{}, nil }
	runtime.Invoke(app, "POST /orders/{id}", noop)
	runtime.Invoke(app, "POST /orders/{key}", noop)
	runtime.Invoke(app, "bad pattern", noop)
	runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "orders", Route: "/orders/x"}, func(context.Context, runtime.Event[struct{}]) error { return nil })
	runtime.Binding(app, "tick", func(context.Context, runtime.BindingEvent[struct{}]) error { return nil })
	runtime.Binding(app, "tick", func(context.Context, runtime.BindingEvent[struct{}]) error { return nil })
	runtime.Invoke(app, "POST /tick", noop)
	runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "slow", Bulk: &runtime.BulkDelivery{MaxAwait: time.Microsecond}}, func(context.Context, runtime.Event[struct{}]) error { return nil })
	runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "many", Bulk: &runtime.BulkDelivery{MaxMessages: -1}}, func(context.Context, runtime.Event[struct{}]) error { return nil })
	runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "fine", Bulk: &runtime.BulkDelivery{MaxMessages: 100, MaxAwait: time.Millisecond}}, func(context.Context, runtime.Event[struct{}]) error { return nil })
	err := app.Err()
	require.Error(t, err)
	for _, want := range []string{"overlaps", "bad pattern", "collides", `binding "tick" registered twice`,
		`route "POST /tick" collides with input binding "tick"`,
		"topic pubsub/slow: bulk delivery: MaxAwait 1µs must be 0 (daprd's default) or at least 1ms",
		"topic pubsub/many: bulk delivery: MaxMessages -1"} {
		assert.Contains(t, err.Error(), want)
	}
	assert.NotContains(t, err.Error(), "pubsub/fine")
}

func TestClassify(t *testing.T) {
	assert.Nil(t, runtime.Classify(nil))
	wrapped := errors.Join(errors.New("ctx"), runtime.NotFound("x", "missing"))
	assert.Equal(t, http.StatusNotFound, runtime.Classify(wrapped).Status)
	assert.Equal(t, runtime.Drop, runtime.Classify(runtime.Poison(errors.New("p"))).Outcome)
	assert.Equal(t, runtime.Retry, runtime.Classify(errors.New("plain")).Outcome)
	assert.Equal(t, http.StatusGatewayTimeout, runtime.Classify(context.DeadlineExceeded).Status)
	assert.JSONEq(t, `{"error":"missing","code":"x"}`, string(runtime.NotFound("x", "missing").ErrorJSON()))
}

func TestTopicDecodingOutcomes(t *testing.T) {
	type ev struct {
		OrderID string `json:"orderId"`
	}
	app := runtime.New(runtime.Options{})
	var got runtime.Event[ev]
	runtime.Topic(app, runtime.Subscription{Pubsub: "ps", Topic: "t"}, func(_ context.Context, e runtime.Event[ev]) error { got = e; return nil })
	meta := &runtime.EventMeta{ID: "1", Pubsub: "ps", Topic: "t"}
	dispatch := func(body string) runtime.Outcome {
		r := app.Dispatch(context.Background(), &runtime.Message{Kind: runtime.KindTopic, Event: meta, Body: []byte(body)})
		if e := runtime.Classify(r.Err); e != nil {
			return e.Outcome
		}
		return runtime.Success
	}
	assert.Equal(t, runtime.Success, dispatch(`{"orderId":"o-1"}`))
	assert.Equal(t, "o-1", got.Data.OrderID)
	assert.Equal(t, "1", got.ID)
	assert.Equal(t, runtime.Success, dispatch(`"{\"orderId\":\"o-2\"}"`), "JSON published as text is unwrapped")
	assert.Equal(t, "o-2", got.Data.OrderID)
	assert.Equal(t, runtime.Drop, dispatch(`{"orderId":`))
	assert.Equal(t, runtime.Drop, dispatch(``))
	unknown := app.Dispatch(context.Background(), &runtime.Message{Kind: runtime.KindTopic, Event: &runtime.EventMeta{Pubsub: "ps", Topic: "other"}})
	assert.Equal(t, runtime.Drop, runtime.Classify(unknown.Err).Outcome)
}

func TestRecoverTurnsPanicsIntoRetries(t *testing.T) {
	app := runtime.New(runtime.Options{Middleware: []runtime.Middleware{runtime.Recover(nilLogger())}})
	runtime.Binding(app, "tick", func(context.Context, runtime.BindingEvent[struct{}]) error { panic("oops") })
	r := app.Dispatch(context.Background(), &runtime.Message{Kind: runtime.KindBinding, Name: "tick"})
	e := runtime.Classify(r.Err)
	require.NotNil(t, e)
	assert.Equal(t, runtime.Retry, e.Outcome)
	assert.NotContains(t, string(e.ErrorJSON()), "oops")
}

func TestBodyLimit(t *testing.T) {
	app := runtime.New(runtime.Options{Middleware: []runtime.Middleware{runtime.BodyLimit(8)}})
	runtime.Invoke(app, "POST /x", func(_ context.Context, in map[string]any) (map[string]any, error) { return in, nil })
	r := app.Dispatch(context.Background(), &runtime.Message{Kind: runtime.KindInvoke, Method: "POST", Path: "x", ContentType: "application/json", Body: []byte(`{"a":"0123456789"}`)})
	assert.Equal(t, http.StatusRequestEntityTooLarge, runtime.Classify(r.Err).Status)
}

func TestTraceMiddlewarePutsTheTraceInTheContext(t *testing.T) {
	app := runtime.New(runtime.Options{Middleware: []runtime.Middleware{runtime.Trace()}})
	var tc runtime.TraceContext
	runtime.Topic(app, runtime.Subscription{Pubsub: "ps", Topic: "t"}, func(ctx context.Context, _ runtime.Event[map[string]any]) error {
		tc, _ = runtime.TraceFrom(ctx)
		return nil
	})
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	app.Dispatch(context.Background(), &runtime.Message{Kind: runtime.KindTopic, Event: &runtime.EventMeta{Pubsub: "ps", Topic: "t", TraceParent: tp}, Body: []byte(`{}`)})
	assert.Equal(t, tp, tc.TraceParent)
}
