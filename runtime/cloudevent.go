package runtime

import (
	"bytes"
	"mime"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
)

// ContentTypeCloudEvent is the media type of a structured JSON CloudEvent.
const ContentTypeCloudEvent = "application/cloudevents+json"

// DecodeCloudEvent splits a topic delivery body into its CloudEvent envelope
// and data. A structured CloudEvent (by content type, or a JSON object with
// "specversion") is parsed with the CloudEvents SDK; data_base64 is decoded.
// Anything else is a raw payload: the whole body is the data and the
// envelope is empty but for the content type.
func DecodeCloudEvent(body []byte, contentType string) (*EventMeta, []byte, error) {
	if !isCloudEvent(body, contentType) {
		return &EventMeta{DataContentType: contentType}, body, nil
	}
	e := event.New()
	if err := e.UnmarshalJSON(body); err != nil {
		return nil, nil, Invalid("invalid_cloudevent", "malformed CloudEvent: %v", err)
	}
	// The SDK's unmarshalling already refuses an unknown specversion; the
	// other required attributes are checked here (Validate allocates more).
	if e.ID() == "" || e.Source() == "" || e.Type() == "" {
		return nil, nil, Invalid("invalid_cloudevent", "invalid CloudEvent: id, source and type are required")
	}
	meta := &EventMeta{
		ID:              e.ID(),
		Source:          e.Source(),
		Type:            e.Type(),
		Subject:         e.Subject(),
		SpecVersion:     e.SpecVersion(),
		DataContentType: e.DataContentType(),
		Time:            e.Time(),
	}
	var ext map[string]any
	if v1, ok := e.Context.(*event.EventContextV1); ok {
		ext = v1.Extensions // read in place: Extensions() copies the map
	} else {
		ext = e.Extensions()
	}
	meta.TraceParent = extString(ext, "traceparent")
	meta.TraceState = extString(ext, "tracestate")
	meta.Pubsub = extString(ext, "pubsubname")
	meta.Topic = extString(ext, "topic")
	return meta, e.Data(), nil
}

func isCloudEvent(body []byte, contentType string) bool {
	if contentType != "" {
		mt, _, _ := mime.ParseMediaType(contentType)
		if mt == ContentTypeCloudEvent {
			return true
		}
	}
	b := bytes.TrimLeft(body, " \t\r\n")
	return len(b) > 0 && b[0] == '{' && bytes.Contains(b, []byte(`"specversion"`))
}

func extString(ext map[string]any, name string) string {
	v, ok := ext[name]
	if !ok {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return strings.TrimSpace(toString(v))
}

func toString(v any) string {
	b, _ := marshalJSON(v)
	return strings.Trim(string(b), `"`)
}
