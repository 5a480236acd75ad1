package bindings

import (
	"context"
	"fmt"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/daprfn/shop/runtime"
)

// EncodeCloudEvent renders ev as a structured JSON CloudEvent 1.0 with JSON
// data and the context's traceparent as an extension.
func EncodeCloudEvent(ctx context.Context, ev Event) ([]byte, error) {
	e := cloudevents.New()
	e.SetID(ev.ID)
	e.SetSource(ev.Source)
	e.SetType(ev.Type)
	if ev.Subject != "" {
		e.SetSubject(ev.Subject)
	}
	e.SetTime(time.Now().UTC())
	if err := e.SetData("application/json", ev.Data); err != nil {
		return nil, fmt.Errorf("encode event %s data: %w", ev.ID, err)
	}
	if tc, ok := runtime.TraceFrom(ctx); ok {
		e.SetExtension("traceparent", tc.TraceParent)
		if tc.TraceState != "" {
			e.SetExtension("tracestate", tc.TraceState)
		}
	}
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("event %q is not a valid CloudEvent: %w", ev.ID, err)
	}
	return e.MarshalJSON()
}
