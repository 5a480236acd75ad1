package metrics

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// CountersPattern is the route of an app's counters as JSON: an internal
// route runtime/host registers next to METRICS_PORT, so that another
// function of the deployment (the storefront) reads them through its own
// sidecar by service invocation: GET CountersMethod of the app-id.
const (
	CountersPattern = "GET /runtime/metrics"
	CountersMethod  = "runtime/metrics"
)

// Counters are an app's deliveries per function since it started, the same
// figures /metrics serves, for a page rather than for Prometheus.
type Counters struct {
	AppID     string            `json:"appId"`
	Functions []FunctionCounter `json:"functions"`
}

// FunctionCounter is one registration's deliveries by outcome and its
// latency quantiles, estimated from the histogram's buckets the way
// Prometheus's histogram_quantile does (within the bucket, linearly).
type FunctionCounter struct {
	Trigger string  `json:"trigger"` // invoke, topic or binding
	Name    string  `json:"name"`    // "POST /orders", "pubsub/orders", "restock"
	Success uint64  `json:"success"`
	Retry   uint64  `json:"retry"`
	Drop    uint64  `json:"drop"`
	P50Ms   float64 `json:"p50Ms"`
	P99Ms   float64 `json:"p99Ms"`
}

// ReadCounters reads every function's counters from g (the registry
// Middleware records in), sorted by trigger and name. Deliveries of the
// counters route itself are left out, so that reading does not change what
// is read.
func ReadCounters(g prometheus.Gatherer, appID string) (Counters, error) {
	families, err := g.Gather()
	if err != nil {
		return Counters{}, fmt.Errorf("gather metrics: %w", err)
	}
	byKey := map[[2]string]*FunctionCounter{}
	get := func(m *dto.Metric) *FunctionCounter {
		l := labels(m)
		k := [2]string{l["trigger"], l["name"]}
		if byKey[k] == nil {
			byKey[k] = &FunctionCounter{Trigger: k[0], Name: k[1]}
		}
		return byKey[k]
	}
	for _, f := range families {
		switch f.GetName() {
		case DeliveriesName:
			for _, m := range f.GetMetric() {
				fc, n := get(m), uint64(m.GetCounter().GetValue())
				switch labels(m)["outcome"] {
				case "success":
					fc.Success += n
				case "retry":
					fc.Retry += n
				case "drop":
					fc.Drop += n
				}
			}
		case DurationName:
			for _, m := range f.GetMetric() {
				fc, h := get(m), m.GetHistogram()
				fc.P50Ms = 1000 * quantile(0.5, h)
				fc.P99Ms = 1000 * quantile(0.99, h)
			}
		}
	}
	out := Counters{AppID: appID, Functions: []FunctionCounter{}}
	for k, fc := range byKey {
		if k == [2]string{"invoke", CountersPattern} {
			continue
		}
		out.Functions = append(out.Functions, *fc)
	}
	slices.SortFunc(out.Functions, func(a, b FunctionCounter) int {
		return cmp.Or(cmp.Compare(a.Trigger, b.Trigger), cmp.Compare(a.Name, b.Name))
	})
	return out, nil
}

// CountersFunc is the function of the counters route: ReadCounters of g.
func CountersFunc(g prometheus.Gatherer, appID string) func(context.Context, struct{}) (Counters, error) {
	return func(context.Context, struct{}) (Counters, error) { return ReadCounters(g, appID) }
}

func labels(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// quantile estimates the q-quantile of h as histogram_quantile does: it
// finds the bucket the rank falls in and interpolates linearly within it
// (from 0 for the first bucket); a rank beyond the last bound answers that
// bound. An empty histogram answers 0.
func quantile(q float64, h *dto.Histogram) float64 {
	total := h.GetSampleCount()
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	lower, below := 0.0, uint64(0)
	for _, b := range h.GetBucket() {
		upper, count := b.GetUpperBound(), b.GetCumulativeCount()
		if math.IsInf(upper, +1) {
			break
		}
		if float64(count) >= rank {
			in := count - below
			if in == 0 {
				return upper
			}
			return lower + (upper-lower)*(rank-float64(below))/float64(in)
		}
		lower, below = upper, count
	}
	return lower
}
