// Package metrics records what the runtime's functions do, per trigger, in
// the Prometheus format the Dapr ecosystem scrapes (daprd's own metrics are
// Prometheus too): a counter of deliveries by outcome and a latency
// histogram, for every invocation route, topic and input binding of an App.
//
//	reg := prometheus.NewRegistry()
//	app := runtime.New(runtime.Options{Middleware: append([]runtime.Middleware{metrics.Middleware(reg)}, runtime.Defaults(log, maxBody)...)})
//	http.Handle("/metrics", metrics.Handler(reg))
//
// runtime/host does this for an app when METRICS_PORT is set, and also
// registers the same counters as JSON (ReadCounters) on the internal route
// CountersPattern, for the deployment's own functions to read through their
// sidecars.
//
// The exposition uses the Prometheus Go client: it is the reference
// implementation of the text format, what daprd's own exporter serves, and
// a small dependency next to OpenTelemetry's SDK plus its Prometheus bridge,
// which would add a second metrics model to translate from.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/daprfn/shop/runtime"
)

// The metric names, with their labels:
//
//	function_deliveries_total{trigger, name, outcome}   counter
//	function_delivery_duration_seconds{trigger, name}   histogram
//
// trigger is invoke, topic or binding; name the route pattern ("POST
// /orders"), the "pubsub/topic" or the binding; outcome success, retry or
// drop (the runtime's Outcome: 2xx, 5xx/RETRY, 4xx/DROP).
const (
	DeliveriesName = "function_deliveries_total"
	DurationName   = "function_delivery_duration_seconds"
)

// Buckets are the latency histogram's upper bounds, in seconds: from half a
// millisecond (a cached answer) to ten (a function waiting on a slow sink).
var Buckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Middleware records every delivery of the handlers it wraps in reg. Put it
// first, outside runtime.Recover and runtime.BodyLimit, so that a panic
// counts as the retry it becomes and an oversized body as its drop.
func Middleware(reg prometheus.Registerer) runtime.Middleware {
	deliveries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: DeliveriesName,
		Help: "Deliveries to the app's functions, by trigger, registration and outcome (success, retry, drop).",
	}, []string{"trigger", "name", "outcome"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    DurationName,
		Help:    "How long the app's functions took per delivery, by trigger and registration.",
		Buckets: Buckets,
	}, []string{"trigger", "name"})
	reg.MustRegister(deliveries, duration)
	return func(next runtime.Handler) runtime.Handler {
		return runtime.HandlerFunc(func(ctx context.Context, m *runtime.Message) runtime.Reply {
			start := time.Now()
			r := next.Handle(ctx, m)
			outcome := runtime.Success
			if e := runtime.Classify(r.Err); e != nil {
				outcome = e.Outcome
			}
			kind := m.Kind.String()
			deliveries.WithLabelValues(kind, m.Name, outcomeLabel(outcome)).Inc()
			duration.WithLabelValues(kind, m.Name).Observe(time.Since(start).Seconds())
			return r
		})
	}
}

func outcomeLabel(o runtime.Outcome) string {
	switch o {
	case runtime.Retry:
		return "retry"
	case runtime.Drop:
		return "drop"
	}
	return "success"
}

// NewRegistry returns a registry with the Go runtime's and the process's
// collectors, labelled with the app's Dapr app-id.
func NewRegistry(appID string) (*prometheus.Registry, prometheus.Registerer) {
	reg := prometheus.NewRegistry()
	labelled := prometheus.WrapRegistererWith(prometheus.Labels{"app_id": appID}, reg)
	labelled.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg, labelled
}

// Handler serves reg in the Prometheus text format (GET /metrics).
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
