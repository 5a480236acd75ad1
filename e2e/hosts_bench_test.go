package e2e

import (
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestHostsThroughput measures orders per second in the host mode, once
// with one replica of every function (one app host) and once with two, and
// audits every order afterwards. It runs only when SHOP_HOSTS_BENCH=1 (it
// takes about two minutes and wants the machine to itself):
//
//	SHOP_HOSTS_BENCH=1 go test ./e2e -run TestHostsThroughput -count=1 -v
//
// Every host runs on the same machine, so a second replica adds no CPU:
// the figures show what mTLS between sidecars and the storefront's extra
// hop cost, not how the shop scales.
func TestHostsThroughput(t *testing.T) {
	if os.Getenv("SHOP_HOSTS_BENCH") != "1" {
		t.Skip("a measurement, not a test: set SHOP_HOSTS_BENCH=1 to run it")
	}
	const (
		connections = 16
		warmup      = 3 * time.Second
		measure     = 15 * time.Second
	)
	for _, sc := range []struct {
		name     string
		appHosts int
		entry    string // "storefront": through the storefront's sidecar on the client host; "order": the order-service's own sidecar on app1
	}{
		{"one replica into the order-service sidecar", 1, "order"},
		{"one replica through the storefront sidecar", 1, "storefront"},
		{"two replicas through the storefront sidecar", 2, "storefront"},
	} {
		t.Run(sc.name, func(t *testing.T) {
			s := startHosts(t, sc.appHosts)
			h, url := s.client, s.client.URL(storefrontHTTPPort, "/v1.0/invoke/order-service/method/orders")
			if sc.entry == "order" {
				h, url = s.first(), s.first().URL(s.apps["order"].DaprHTTPPort, "/v1.0/invoke/order-service/method/orders")
			}
			client := h.HTTPClient(30 * time.Second)
			var (
				mu        sync.Mutex
				answers   []loadAnswer
				latencies []time.Duration
			)
			start := time.Now()
			from, to := start.Add(warmup), start.Add(warmup+measure)
			var wg sync.WaitGroup
			for w := range connections {
				wg.Go(func() {
					for i := 0; time.Now().Before(to); i++ {
						body := `{"productId":"product-1","quantity":1,"customerEmail":"bench-` + strconv.Itoa(w) + "-" + strconv.Itoa(i) + `@example.com"}`
						at := time.Now()
						a := loadAnswer{at: at}
						resp, err := client.Post(url, "application/json", strings.NewReader(body))
						if err == nil {
							b, _ := io.ReadAll(resp.Body)
							resp.Body.Close()
							a.status, a.body = resp.StatusCode, string(b)
						} else {
							a.body = err.Error()
						}
						a.took = time.Since(at)
						mu.Lock()
						answers = append(answers, a)
						if a.status == http.StatusOK && !at.Before(from) && at.Add(a.took).Before(to) {
							latencies = append(latencies, a.took)
						}
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			require.NotEmpty(t, latencies)
			slices.Sort(latencies)
			p := func(q float64) time.Duration {
				return latencies[int(q*float64(len(latencies)-1))].Round(100 * time.Microsecond)
			}
			r := audit(t, s, answers)
			t.Logf("throughput: %s: %.0f orders/s over %s (%d connections), p50 %s, p99 %s; %d answered 200 in all, %d failed",
				sc.name, float64(len(latencies))/measure.Seconds(), measure, connections, p(0.5), p(0.99), r.ok, r.failed)
		})
	}
}
