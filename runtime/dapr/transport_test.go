package dapr

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/daprfn/shop/runtime"
)

type order struct {
	OrderID string `json:"orderId"`
}

func testApp() (*runtime.App, *[]string) {
	var seen []string
	app := runtime.New(runtime.Options{})
	runtime.Invoke(app, "GET /orders/{id}", func(_ context.Context, in struct{}) (map[string]string, error) {
		return map[string]string{"ok": "yes"}, nil
	})
	runtime.Invoke(app, "POST /fail", func(context.Context, struct{}) (struct{}, error) {
		return struct{}{}, runtime.NotFound("gone", "it is gone")
	})
	runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "orders", Route: "/orders", DeadLetterTopic: "dead"},
		func(_ context.Context, ev runtime.Event[order]) error {
			seen = append(seen, ev.ID+":"+ev.Data.OrderID)
			if ev.Data.OrderID == "retry" {
				return runtime.RetryLater(nil)
			}
			return nil
		})
	runtime.Binding(app, "restock", func(context.Context, runtime.BindingEvent[struct{}]) error { seen = append(seen, "tick"); return nil })
	return app, &seen
}

func do(h http.Handler, method, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHTTPTransport(t *testing.T) {
	app, seen := testApp()
	h := NewHTTPHandler(app, HTTPOptions{})

	sub := do(h, "GET", "/dapr/subscribe", "", nil)
	assert.JSONEq(t, `[{"pubsubname":"pubsub","topic":"orders","route":"/orders","deadLetterTopic":"dead"}]`, sub.Body.String())

	assert.Equal(t, http.StatusOK, do(h, "OPTIONS", "/restock", "", nil).Code, "daprd's binding probe")
	assert.Equal(t, http.StatusNotFound, do(h, "OPTIONS", "/unknown", "", nil).Code)
	assert.Equal(t, http.StatusOK, do(h, "POST", "/restock", "", nil).Code)

	ce := `{"specversion":"1.0","id":"e1","source":"s","type":"t","datacontenttype":"application/json","data":{"orderId":"o1"}}`
	r := do(h, "POST", "/orders", ce, map[string]string{"Content-Type": runtime.ContentTypeCloudEvent})
	assert.JSONEq(t, `{"status":"SUCCESS"}`, r.Body.String())
	r = do(h, "POST", "/orders", strings.Replace(ce, `"o1"`, `"retry"`, 1), map[string]string{"Content-Type": runtime.ContentTypeCloudEvent})
	assert.JSONEq(t, `{"status":"RETRY"}`, r.Body.String())
	r = do(h, "POST", "/orders", `{"specversion":"1.0","id":`, map[string]string{"Content-Type": runtime.ContentTypeCloudEvent})
	assert.JSONEq(t, `{"status":"DROP"}`, r.Body.String(), "an undecodable envelope is poison")
	r = do(h, "POST", "/orders", `{"orderId":"raw"}`, map[string]string{"Content-Type": "application/json"})
	assert.JSONEq(t, `{"status":"SUCCESS"}`, r.Body.String(), "raw payloads are accepted")
	assert.Equal(t, []string{"tick", "e1:o1", "e1:retry", ":raw"}, *seen)

	r = do(h, "GET", "/orders/42", "", nil)
	assert.Equal(t, http.StatusOK, r.Code)
	r = do(h, "POST", "/fail", "", nil)
	assert.Equal(t, http.StatusNotFound, r.Code)
	assert.JSONEq(t, `{"error":"it is gone","code":"gone"}`, r.Body.String())
	assert.Equal(t, "application/json", r.Header().Get("Content-Type"))
}

func TestHTTPTransportDropsBadEnvelopesAndAnswersBadInputWithJSON(t *testing.T) {
	app, seen := testApp()
	h := NewHTTPHandler(app, HTTPOptions{MaxBody: 1024})
	ceHeader := map[string]string{"Content-Type": runtime.ContentTypeCloudEvent}
	for name, ce := range map[string]string{
		"wrong specversion":    `{"specversion":"9.9","id":"e1","source":"s","type":"t","data":{"orderId":"o1"}}`,
		"missing id":           `{"specversion":"1.0","source":"s","type":"t","data":{"orderId":"o1"}}`,
		"empty id":             `{"specversion":"1.0","id":"","source":"s","type":"t","data":{"orderId":"o1"}}`,
		"missing source":       `{"specversion":"1.0","id":"e1","type":"t","data":{"orderId":"o1"}}`,
		"duplicate keys":       `{"specversion":"1.0","id":"e1","source":"s","type":"t","data":{"orderId":"o1","orderId":"o2"}}`,
		"not UTF-8":            "{\"specversion\":\"1.0\",\"id\":\"e1\",\"source\":\"s\",\"type\":\"t\",\"data\":{\"orderId\":\"o\xff\"}}",
		"data not an object":   `{"specversion":"1.0","id":"e1","source":"s","type":"t","data":[1]}`,
		"event over the limit": `{"specversion":"1.0","id":"e1","source":"s","type":"t","data":{"orderId":"` + strings.Repeat("x", 2048) + `"}}`,
	} {
		r := do(h, "POST", "/orders", ce, ceHeader)
		assert.JSONEq(t, `{"status":"DROP"}`, r.Body.String(), name)
	}
	assert.Empty(t, *seen, "no bad envelope reaches the function")

	for name, c := range map[string]struct {
		body, ct string
		status   int
	}{
		"no content type":     {`{}`, "", http.StatusUnsupportedMediaType},
		"text content type":   {`{}`, "text/plain", http.StatusUnsupportedMediaType},
		"body over the limit": {`{"a":"` + strings.Repeat("x", 2048) + `"}`, "application/json", http.StatusRequestEntityTooLarge},
		"binding not JSON":    {`{"x":`, "application/json", http.StatusBadRequest},
	} {
		path := "/fail"
		if name == "binding not JSON" {
			path = "/restock"
		}
		r := do(h, "POST", path, c.body, map[string]string{"Content-Type": c.ct})
		assert.Equal(t, c.status, r.Code, "%s: %s", name, r.Body.String())
		assert.True(t, json.Valid(r.Body.Bytes()), "%s: %s", name, r.Body.String())
	}
}

func TestHTTPTransportEnforcesTheAppToken(t *testing.T) {
	app, _ := testApp()
	h := NewHTTPHandler(app, HTTPOptions{AppToken: "s3cret", Ready: func() bool { return false }})
	assert.Equal(t, http.StatusUnauthorized, do(h, "GET", "/orders/1", "", nil).Code)
	assert.Equal(t, http.StatusUnauthorized, do(h, "GET", "/orders/1", "", map[string]string{"dapr-api-token": "wrong"}).Code)
	assert.Equal(t, http.StatusOK, do(h, "GET", "/orders/1", "", map[string]string{"dapr-api-token": "s3cret"}).Code)
	assert.Equal(t, http.StatusOK, do(h, "GET", "/healthz", "", nil).Code, "probes need no token")
	assert.Equal(t, http.StatusServiceUnavailable, do(h, "GET", "/readyz", "", nil).Code)
}

func TestGRPCTransport(t *testing.T) {
	app, seen := testApp()
	cb := newCallback(app)
	ctx := context.Background()

	subs, err := cb.ListTopicSubscriptions(ctx, &emptypb.Empty{})
	require.NoError(t, err)
	require.Len(t, subs.GetSubscriptions(), 1)
	assert.Equal(t, "dead", subs.GetSubscriptions()[0].GetDeadLetterTopic())
	bs, err := cb.ListInputBindings(ctx, &emptypb.Empty{})
	require.NoError(t, err)
	assert.Equal(t, []string{"restock"}, bs.GetBindings())

	resp, err := cb.OnInvoke(ctx, &commonv1.InvokeRequest{Method: "orders/7", HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_GET}})
	require.NoError(t, err)
	assert.JSONEq(t, `{"ok":"yes"}`, string(resp.GetData().GetValue()))
	_, err = cb.OnInvoke(ctx, &commonv1.InvokeRequest{Method: "fail", Data: &anypb.Any{}, HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_POST}})
	assert.Equal(t, codes.NotFound, status.Code(err), "daprd maps NotFound back to 404 for HTTP callers")

	ev, err := cb.OnTopicEvent(ctx, &runtimev1.TopicEventRequest{Id: "e2", PubsubName: "pubsub", Topic: "orders", Data: []byte(`{"orderId":"o2"}`)})
	require.NoError(t, err)
	assert.Equal(t, runtimev1.TopicEventResponse_SUCCESS, ev.GetStatus())
	ev, _ = cb.OnTopicEvent(ctx, &runtimev1.TopicEventRequest{Id: "e3", PubsubName: "pubsub", Topic: "orders", Data: []byte(`{"orderId":"retry"}`)})
	assert.Equal(t, runtimev1.TopicEventResponse_RETRY, ev.GetStatus())
	ev, _ = cb.OnTopicEvent(ctx, &runtimev1.TopicEventRequest{Id: "e4", PubsubName: "pubsub", Topic: "orders", Data: []byte(`{"orderId":`)})
	assert.Equal(t, runtimev1.TopicEventResponse_DROP, ev.GetStatus())
	_, err = cb.OnBindingEvent(ctx, &runtimev1.BindingEventRequest{Name: "restock"})
	require.NoError(t, err)
	assert.Equal(t, []string{"e2:o2", "e3:retry", "tick"}, *seen)
}

func TestMissingComponentsNamesThemAndWhereToAdd(t *testing.T) {
	err := MissingComponents(
		[]runtime.Component{{Kind: "state", Name: "statestore"}, {Kind: "bindings", Name: "email"}},
		[]runtime.Component{{Kind: "state", Name: "statestore", Type: "state.redis"}},
		"components/redis")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "bindings/email")
	assert.Contains(t, err.Error(), "components/redis")
	assert.NotContains(t, err.Error(), "components bindings/email, state")
	assert.NoError(t, MissingComponents([]runtime.Component{{Kind: "state", Name: "statestore"}},
		[]runtime.Component{{Kind: "state", Name: "statestore", Type: "state.redis"}}, ""))
}

func TestGRPCBulkDeliveryAnswersEachEntryOnItsOwn(t *testing.T) {
	app := runtime.New(runtime.Options{})
	var mu sync.Mutex
	got := map[string]string{}
	runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "orders", Route: "/orders",
		Bulk: &runtime.BulkDelivery{MaxMessages: 50, MaxAwait: 5 * time.Millisecond}},
		func(_ context.Context, ev runtime.Event[order]) error {
			mu.Lock()
			got[ev.ID] = ev.Pubsub + "/" + ev.Topic + ":" + ev.Data.OrderID + ":" + ev.Subject
			mu.Unlock()
			if ev.Data.OrderID == "retry" {
				return runtime.RetryLater(nil)
			}
			return nil
		})
	require.NoError(t, app.Err())
	cb := newCallback(app)
	ctx := context.Background()

	subs, err := cb.ListTopicSubscriptions(ctx, &emptypb.Empty{})
	require.NoError(t, err)
	bulk := subs.GetSubscriptions()[0].GetBulkSubscribe()
	require.NotNil(t, bulk, "the subscription declares bulk subscribe to daprd")
	assert.True(t, bulk.GetEnabled())
	assert.EqualValues(t, 50, bulk.GetMaxMessagesCount())
	assert.EqualValues(t, 5, bulk.GetMaxAwaitDurationMs())

	ce := func(entry, id, data string) *runtimev1.TopicEventBulkRequestEntry {
		ext, _ := structpb.NewStruct(map[string]any{"subject": "s-" + id})
		return &runtimev1.TopicEventBulkRequestEntry{EntryId: entry, ContentType: "application/cloudevents+json",
			Event: &runtimev1.TopicEventBulkRequestEntry_CloudEvent{CloudEvent: &runtimev1.TopicEventCERequest{
				Id: id, Source: "order-service", Type: "t", SpecVersion: "1.0", DataContentType: "application/json",
				Data: []byte(data), Extensions: ext}}}
	}
	resp, err := cb.OnBulkTopicEvent(ctx, &runtimev1.TopicEventBulkRequest{Id: "bulk-1", PubsubName: "pubsub", Topic: "orders", Entries: []*runtimev1.TopicEventBulkRequestEntry{
		ce("a", "e1", `{"orderId":"o1"}`),
		ce("b", "e2", `{"orderId":"retry"}`),
		ce("c", "e3", `{"orderId":`),
		ce("d", "e4", `{"orderId":"o4"}`),
		{EntryId: "r", ContentType: "application/json", // a rawPayload subscription's entry
			Event: &runtimev1.TopicEventBulkRequestEntry_Bytes{Bytes: []byte(`{"orderId":"raw"}`)}},
	}})
	require.NoError(t, err)
	statuses := map[string]runtimev1.TopicEventResponse_TopicEventResponseStatus{}
	for _, s := range resp.GetStatuses() {
		statuses[s.GetEntryId()] = s.GetStatus()
	}
	assert.Equal(t, map[string]runtimev1.TopicEventResponse_TopicEventResponseStatus{
		"a": runtimev1.TopicEventResponse_SUCCESS,
		"b": runtimev1.TopicEventResponse_RETRY,
		"c": runtimev1.TopicEventResponse_DROP, // not JSON: poison, dead-lettered by daprd
		"d": runtimev1.TopicEventResponse_SUCCESS,
		"r": runtimev1.TopicEventResponse_SUCCESS,
	}, statuses)
	assert.Equal(t, map[string]string{
		"e1": "pubsub/orders:o1:s-e1",
		"e2": "pubsub/orders:retry:s-e2",
		"e4": "pubsub/orders:o4:s-e4",
		"":   "pubsub/orders:raw:", // a raw payload has no envelope, so no id
	}, got, "every decodable entry reached the handler once, with its envelope and the bulk request's pubsub and topic")
}

func TestHTTPDoesNotDeclareBulkSubscribe(t *testing.T) {
	app := runtime.New(runtime.Options{})
	runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "orders", Route: "/orders", Bulk: &runtime.BulkDelivery{MaxMessages: 10}},
		func(context.Context, runtime.Event[order]) error { return nil })
	rec := do(NewHTTPHandler(app, HTTPOptions{}), "GET", "/dapr/subscribe", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `[{"pubsubname":"pubsub","topic":"orders","route":"/orders"}]`, rec.Body.String(),
		"the HTTP transport reads one event per request, so it must not ask daprd for bulk envelopes")
}
