package metrics_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/runtime"
	"github.com/daprfn/shop/runtime/metrics"
)

// The counters route answers the deliveries of each registration by
// outcome, with quantiles from the histogram, only to the deployment's
// functions, and leaves its own calls out.
func TestCountersRouteAnswersEachFunctionsDeliveries(t *testing.T) {
	const token = "internal"
	reg, labelled := metrics.NewRegistry("quotes")
	app := runtime.New(runtime.Options{InternalToken: token, Middleware: []runtime.Middleware{metrics.Middleware(labelled)}})
	runtime.Invoke(app, "POST /quote", func(_ context.Context, q quote) (string, error) {
		if q.ID == "down" {
			return "", runtime.RetryLater(errors.New("sink down"))
		}
		return "ok", nil
	})
	runtime.Invoke(app, metrics.CountersPattern, metrics.CountersFunc(reg, "quotes"), runtime.Internal)
	require.NoError(t, app.Err())
	for _, body := range []string{`{"id":"1"}`, `{"id":"2"}`, `{"id":"3"}`, `{}`, `{"id":"down"}`} {
		app.Dispatch(context.Background(), &runtime.Message{Kind: runtime.KindInvoke, Method: "POST", Path: "quote", ContentType: "application/json", Body: []byte(body)})
	}
	counters := func(header http.Header) runtime.Reply {
		return app.Dispatch(context.Background(), &runtime.Message{Kind: runtime.KindInvoke, Method: "GET", Path: metrics.CountersMethod, Header: header})
	}

	refused := counters(nil)
	require.Error(t, refused.Err)
	assert.Equal(t, http.StatusForbidden, runtime.Classify(refused.Err).Status, "an outsider may not read them")

	internal := http.Header{http.CanonicalHeaderKey(runtime.InternalTokenHeader): {token}}
	require.NoError(t, counters(internal).Err)
	r := counters(internal) // a second read: the first one's call is not among them
	require.NoError(t, r.Err)
	var got metrics.Counters
	require.NoError(t, json.Unmarshal(r.Body, &got), string(r.Body))
	assert.Equal(t, "quotes", got.AppID)
	require.Len(t, got.Functions, 1, "POST /quote only, not the counters route: %s", r.Body)
	f := got.Functions[0]
	assert.Equal(t, metrics.FunctionCounter{Trigger: "invoke", Name: "POST /quote", Success: 3, Retry: 1, Drop: 1, P50Ms: f.P50Ms, P99Ms: f.P99Ms}, f)
	assert.Greater(t, f.P50Ms, 0.0)
	assert.LessOrEqual(t, f.P50Ms, f.P99Ms)
	assert.LessOrEqual(t, f.P99Ms, 1000*metrics.Buckets[len(metrics.Buckets)-1])
}

// The quantiles interpolate within the bucket the rank falls in, as
// Prometheus's histogram_quantile does.
// synctest's clock makes every call take exactly what it sleeps.
func TestCountersQuantilesFollowTheBuckets(t *testing.T) {
	synctest.Test(t, countersQuantiles)
}

func countersQuantiles(t *testing.T) {
	reg := prometheus.NewRegistry()
	app := runtime.New(runtime.Options{Middleware: []runtime.Middleware{metrics.Middleware(reg)}})
	var took time.Duration
	runtime.Invoke(app, "POST /work", func(context.Context, struct{}) (string, error) {
		time.Sleep(took)
		return "done", nil
	})
	runtime.Invoke(app, "GET /idle", func(context.Context, struct{}) (string, error) { return "", nil })
	// 98 calls of 0.2 ms (the first bucket, up to half a millisecond) and
	// 2 of 30 ms (the 25-50 ms bucket): the median is in the first bucket,
	// the 99th percentile in the 25-50 ms one.
	for i := range 100 {
		took = 200 * time.Microsecond
		if i >= 98 {
			took = 30 * time.Millisecond
		}
		app.Dispatch(context.Background(), &runtime.Message{Kind: runtime.KindInvoke, Method: "POST", Path: "work"})
	}
	got, err := metrics.ReadCounters(reg, "app")
	require.NoError(t, err)
	require.Len(t, got.Functions, 1, "a registration with no delivery has no series")
	f := got.Functions[0]
	assert.EqualValues(t, 100, f.Success)
	assert.InDelta(t, 0.5*50/98, f.P50Ms, 1e-9, "rank 50 of the 98 in [0, 0.5 ms]")
	assert.InDelta(t, 25+25*1.0/2, f.P99Ms, 1e-9, "rank 99: the first of the 2 in [25, 50 ms]")

	empty, err := metrics.ReadCounters(prometheus.NewRegistry(), "none")
	require.NoError(t, err)
	assert.Equal(t, metrics.Counters{AppID: "none", Functions: []metrics.FunctionCounter{}}, empty, "no deliveries: an empty list, not null")
}
