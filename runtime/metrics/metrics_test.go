package metrics_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/runtime"
	"github.com/daprfn/shop/runtime/metrics"
)

type quote struct {
	ID string `json:"id"`
}

func (q quote) Validate() error {
	if q.ID == "" {
		return runtime.Invalid("invalid_id", "id is required")
	}
	return nil
}

func TestEveryDeliveryIsCountedByTriggerNameAndOutcome(t *testing.T) {
	reg, labelled := metrics.NewRegistry("quotes")
	app := runtime.New(runtime.Options{Middleware: append([]runtime.Middleware{metrics.Middleware(labelled)}, runtime.Defaults(slog.New(slog.DiscardHandler), 1<<10)...)})
	runtime.Invoke(app, "POST /quote", func(_ context.Context, q quote) (string, error) {
		if q.ID == "down" {
			return "", runtime.RetryLater(errors.New("sink down"))
		}
		return "ok", nil
	})
	runtime.Binding(app, "tick", func(context.Context, runtime.BindingEvent[struct{}]) error { panic("boom") })
	require.NoError(t, app.Err())
	invoke := func(body string) {
		app.Dispatch(context.Background(), &runtime.Message{Kind: runtime.KindInvoke, Method: "POST", Path: "quote", ContentType: "application/json", Body: []byte(body)})
	}
	invoke(`{"id": "1"}`)
	invoke(`{"id": "2"}`)
	invoke(`{}`)
	invoke(`{"id": "down"}`)
	invoke(`{"id": "` + strings.Repeat("x", 2000) + `"}`) // over the body limit: a drop
	app.Dispatch(context.Background(), &runtime.Message{Kind: runtime.KindBinding, Name: "tick"})

	want := `
# HELP function_deliveries_total Deliveries to the app's functions, by trigger, registration and outcome (success, retry, drop).
# TYPE function_deliveries_total counter
function_deliveries_total{app_id="quotes",name="POST /quote",outcome="drop",trigger="invoke"} 2
function_deliveries_total{app_id="quotes",name="POST /quote",outcome="retry",trigger="invoke"} 1
function_deliveries_total{app_id="quotes",name="POST /quote",outcome="success",trigger="invoke"} 2
function_deliveries_total{app_id="quotes",name="tick",outcome="retry",trigger="binding"} 1
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want), metrics.DeliveriesName))
	n, err := testutil.GatherAndCount(reg, metrics.DurationName)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "one latency histogram per registration")

	rec := httptest.NewRecorder()
	metrics.Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	assert.Contains(t, string(body), `function_delivery_duration_seconds_count{app_id="quotes",name="POST /quote",trigger="invoke"} 5`)
	assert.Contains(t, string(body), `go_goroutines{app_id="quotes"}`, "the Go runtime's own metrics, labelled with the app")
}
