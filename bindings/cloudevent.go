package bindings

import (
	"context"
	"fmt"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/daprfn/shop/runtime"
)

// EncodeCloudEvent renders ev as a structured JSON CloudEvent 1.0 with JSON
// data and ev.Trace, or else the context's trace, as extensions. The trace
// goes in both traceparent and Dapr's traceid: daprd keeps an event's own
// traceid and fills in its call's trace only where there is none, which in
// a bulk publish would give every event the trace of the call.
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
	tc, ok := ev.Trace, ev.Trace.TraceParent != ""
	if !ok {
		tc, ok = runtime.TraceFrom(ctx)
	}
	if ok {
		e.SetExtension("traceparent", tc.TraceParent)
		e.SetExtension("traceid", tc.TraceParent)
		if tc.TraceState != "" {
			e.SetExtension("tracestate", tc.TraceState)
		}
	}
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("event %q is not a valid CloudEvent: %w", ev.ID, err)
	}
	return e.MarshalJSON()
}
