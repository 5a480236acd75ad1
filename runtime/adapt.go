package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

const contentTypeJSON = "application/json"

// Invoke registers fn for service invocations matching pattern
// ("POST /check", "GET /orders/{id}"). The JSON body is decoded into In (an
// empty body leaves In zero); if *In implements RequestBinder it then binds
// path values, query and headers; if In implements Validator it is checked.
// A decode, bind or validation failure answers 400 without calling fn. The
// result is encoded as JSON with status 200. The route is Public unless
// access says Internal: only the deployment's own functions may call it.
func Invoke[In, Out any](app *App, pattern string, fn func(context.Context, In) (Out, error), access ...Access) {
	app.Handle(pattern, HandlerFunc(func(ctx context.Context, m *Message) Reply {
		in, err := decodeInput[In](m)
		if err != nil {
			return Reply{Err: err}
		}
		out, err := fn(ctx, in)
		if err != nil {
			return Reply{Err: err}
		}
		body, err := json.Marshal(out)
		if err != nil {
			return Reply{Err: fmt.Errorf("encode %T answer: %w", out, err)}
		}
		return Reply{Body: body, ContentType: contentTypeJSON}
	}), access...)
}

// Topic registers fn for the subscription sub. The event's data is decoded
// into T once; undecodable or invalid data is DROPped (to the dead-letter
// topic when sub has one) without calling fn. fn's error decides the
// outcome through Classify: nil is SUCCESS, a Retry outcome RETRY, a Drop
// outcome DROP.
func Topic[T any](app *App, sub Subscription, fn func(context.Context, Event[T]) error) {
	app.HandleTopic(sub, HandlerFunc(func(ctx context.Context, m *Message) Reply {
		data, err := DecodeEventData[T](m.Body)
		if err != nil {
			return Reply{Err: err}
		}
		return Reply{Err: fn(ctx, Event[T]{EventMeta: *m.Event, Data: data})}
	}))
}

// DecodeEventData decodes and validates event data into T exactly as Topic
// does before calling its function, for handlers that receive data in
// another form first (a dead-letter handler taking []byte). Its error
// classifies as Drop.
func DecodeEventData[T any](data []byte) (T, error) {
	var v T
	if err := decodeEventData(&v, data); err != nil {
		return v, err
	}
	return v, validate(&v)
}

// Binding registers fn for the input binding name (the component's
// metadata.name). The payload is decoded into T when there is one; cron
// sends none, so use struct{} there.
func Binding[T any](app *App, name string, fn func(context.Context, BindingEvent[T]) error) {
	app.HandleBinding(name, HandlerFunc(func(ctx context.Context, m *Message) Reply {
		data, err := decodeBody[T](m.Body)
		if err != nil {
			return Reply{Err: err}
		}
		return Reply{Err: fn(ctx, BindingEvent[T]{Name: name, Data: data, Metadata: m.MetadataMap()})}
	}))
}

// decodeInput decodes, binds and validates an invocation's input.
func decodeInput[In any](m *Message) (In, error) {
	var in In
	if len(m.Body) > 0 {
		if err := checkContentType(m.ContentType); err != nil {
			return in, err
		}
		if err := json.Unmarshal(m.Body, &in); err != nil {
			return in, decodeError(&in, err)
		}
		if err := checkJSONText(m.Body); err != nil {
			return in, err
		}
	}
	if b, ok := any(&in).(RequestBinder); ok {
		if err := b.BindRequest(Request{m}); err != nil {
			return in, asInvalid(err)
		}
	}
	return in, validate(&in)
}

// decodeBody decodes a JSON body; an empty body is T's zero value and costs
// no allocation (cron bindings send none).
func decodeBody[T any](body []byte) (T, error) {
	if len(body) == 0 {
		var zero T
		return zero, nil
	}
	return decodeNonEmpty[T](body)
}

func decodeNonEmpty[T any](body []byte) (T, error) {
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		return v, decodeError(&v, err)
	}
	if err := checkJSONText(body); err != nil {
		return v, err
	}
	return v, nil
}

// decodeEventData decodes CloudEvent data into v; a *[]byte receives the
// data as is. Data that is a JSON string
// holding JSON (published as text) is unwrapped once.
func decodeEventData(v any, data []byte) error {
	if raw, ok := v.(*[]byte); ok { // raw bytes: no decoding, e.g. dead letters
		*raw = data
		return nil
	}
	if len(data) == 0 {
		return Invalid("empty_event", "the event carries no data")
	}
	err := json.Unmarshal(data, v)
	if err == nil {
		if e := checkJSONText(data); e != nil {
			return e
		}
		return nil
	}
	if data[0] == '"' {
		if s, uerr := strconv.Unquote(string(data)); uerr == nil {
			if json.Unmarshal([]byte(s), v) == nil {
				return nil
			}
		}
	}
	return decodeError(v, err)
}

func decodeError(v any, err error) *Error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return Invalid("invalid_field", "field %q: want a JSON %s, got %s", te.Field, te.Type.Kind(), te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return Invalid("invalid_json", "malformed JSON at byte %d: %v", se.Offset, se.Error())
	}
	return Invalid("invalid_json", "body does not decode into %T: %v", v, err)
}

func validate(v any) error {
	var err error
	switch x := v.(type) {
	case Validator:
		err = x.Validate()
	default:
		return nil
	}
	if err != nil {
		return asInvalid(err)
	}
	return nil
}

func asInvalid(err error) error {
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	return Invalid("invalid_argument", "%v", err)
}
