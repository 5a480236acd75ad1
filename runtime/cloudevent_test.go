package runtime_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/runtime"
)

func TestDecodeCloudEvent(t *testing.T) {
	body := `{"specversion":"1.0","id":"e-1","source":"order-service","type":"com.dapr.event.sent","datacontenttype":"application/json",
	  "data":{"orderId":"o-1"},"pubsubname":"pubsub","topic":"orders","traceparent":"00-abc-def-01","traceid":"00-abc-def-01"}`
	meta, data, err := runtime.DecodeCloudEvent([]byte(body), runtime.ContentTypeCloudEvent)
	require.NoError(t, err)
	assert.Equal(t, "e-1", meta.ID)
	assert.Equal(t, "order-service", meta.Source)
	assert.Equal(t, "orders", meta.Topic)
	assert.Equal(t, "00-abc-def-01", meta.TraceParent)
	assert.JSONEq(t, `{"orderId":"o-1"}`, string(data))

	b64 := `{"specversion":"1.0","id":"e-2","source":"s","type":"t","data_base64":"aGVsbG8="}`
	_, data, err = runtime.DecodeCloudEvent([]byte(b64), "application/json")
	require.NoError(t, err)
	assert.Equal(t, "hello", string(data))

	meta, data, err = runtime.DecodeCloudEvent([]byte(`{"orderId":"raw"}`), "application/json")
	require.NoError(t, err, "a raw payload is not an error")
	assert.Empty(t, meta.ID)
	assert.JSONEq(t, `{"orderId":"raw"}`, string(data))

	_, _, err = runtime.DecodeCloudEvent([]byte(`{"specversion":"1.0","id":`), runtime.ContentTypeCloudEvent)
	require.Error(t, err)
	assert.Equal(t, runtime.Drop, runtime.Classify(err).Outcome)
}

func FuzzDecodeCloudEvent(f *testing.F) {
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"s","type":"t","data":{"a":1}}`), true)
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"AAEC"}`), true)
	f.Add([]byte(`not json`), false)
	f.Fuzz(func(t *testing.T, body []byte, structured bool) {
		ct := "application/json"
		if structured {
			ct = runtime.ContentTypeCloudEvent
		}
		meta, _, err := runtime.DecodeCloudEvent(body, ct)
		if err != nil {
			if runtime.Classify(err).Outcome != runtime.Drop {
				t.Fatalf("a decode error must be a DROP, got %v", err)
			}
			return
		}
		if meta == nil {
			t.Fatal("nil envelope without an error")
		}
	})
}

func FuzzInvokeDecoding(f *testing.F) {
	type in struct {
		A int      `json:"a"`
		B []string `json:"b"`
	}
	app := runtime.New(runtime.Options{})
	runtime.Invoke(app, "POST /x", func(_ context.Context, v in) (in, error) { return v, nil })
	f.Add([]byte(`{"a":1,"b":["x"]}`))
	f.Add([]byte(`{"a":1.5}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := app.Dispatch(context.Background(), &runtime.Message{Kind: runtime.KindInvoke, Method: "POST", Path: "x", ContentType: "application/json", Body: body})
		if e := runtime.Classify(r.Err); e != nil && e.Status != 400 {
			t.Fatalf("bad input must be a 400, got %d: %v", e.Status, r.Err)
		}
	})
}
