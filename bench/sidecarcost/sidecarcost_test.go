package sidecarcost

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/daprfn/shop/bindings/dapr"
	"github.com/daprfn/shop/internal/daprtest"
	"github.com/daprfn/shop/internal/launch"
	"github.com/daprfn/shop/internal/procstat"
)

// concurrency is the number of callers, as many as loadbench's connections.
const concurrency = 16

// order is the size and shape of what the order-service writes.
var order = []byte(`{"id":"order-0123456789abcdef0123456789abcdef","productId":"product-1","quantity":1,"customerEmail":"bench@example.com","status":"confirmed"}`)

func BenchmarkWrite(b *testing.B) {
	redis := daprtest.StartRedis(b)
	files, err := os.MkdirTemp(daprtest.TmpfsDir(), "sidecarcost-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(files) })
	// As the launcher runs a daprd without metricsPort: GOGC=200, its
	// Configuration for daprds with no exporter.
	config := filepath.Join(b.TempDir(), "config.yaml")
	if err := os.WriteFile(config, []byte(launch.NoExportersConfig), 0o644); err != nil {
		b.Fatal(err)
	}
	d := daprtest.Start(b, daprtest.Options{
		AppID: daprtest.UniqueID("sidecarcost"),
		Resources: map[string]string{
			"files.yaml": daprtest.Component("files", "bindings.localstorage", "rootPath", files),
			"kv.yaml":    daprtest.Component("kv", "bindings.redis", "redisHost", redis.Addr),
			"state.yaml": daprtest.Component("statestore", "state.redis", "redisHost", redis.Addr),
		},
		Env:  []string{"GOGC=" + launch.DefaultDaprdGOGC},
		Args: []string{"--config", config},
	})
	d.WaitOutbound(b)
	c, err := dapr.New(dapr.Config{Address: d.GRPCAddress(), StateStore: "statestore"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })

	stateURL := d.URL("/v1.0/state/statestore")
	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}}
	var seq atomic.Int64 // every call writes a key or file of its own
	var created atomic.Int64
	writes := []struct {
		name  string
		write func(ctx context.Context, key string) error
	}{
		{"localstorage", func(ctx context.Context, key string) error {
			_, err := c.InvokeBinding(ctx, "files", "create", order, map[string]string{"fileName": key + ".json"})
			if err == nil {
				created.Add(1)
			}
			return err
		}},
		{"redis-binding", func(ctx context.Context, key string) error {
			_, err := c.InvokeBinding(ctx, "kv", "create", order, map[string]string{"key": key})
			return err
		}},
		{"state-save", func(ctx context.Context, key string) error { return c.Save(ctx, key, order, "") }},
		// The same save over daprd's HTTP API, with a pooled net/http client.
		{"state-save-http", func(ctx context.Context, key string) error {
			body := append(append(append([]byte(`[{"key":"`), key...), `","value":`...), order...)
			body = append(body, "}]"...)
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, stateURL, bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := httpClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				return err
			}
			if resp.StatusCode != http.StatusNoContent {
				return fmt.Errorf("POST %s: %s", stateURL, resp.Status)
			}
			return nil
		}},
	}
	for _, w := range writes {
		b.Run(w.name, func(b *testing.B) {
			ctx := context.Background()
			daprd0, redis0, self0 := cpu(b, d.PID()), cpu(b, redis.PID()), selfCPU(b)
			b.SetParallelism(max(1, concurrency/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := w.write(ctx, "order-"+strconv.FormatInt(seq.Add(1), 10)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			n := float64(b.N)
			b.ReportMetric((cpu(b, d.PID())-daprd0)/n*1e6, "daprd-µs/call")
			b.ReportMetric((cpu(b, redis.PID())-redis0)/n*1e6, "redis-µs/call")
			// The caller's side of the same calls: this process, whose
			// only work while timed is making them (the go-sdk client over
			// gRPC, or net/http).
			b.ReportMetric((selfCPU(b)-self0)/n*1e6, "client-µs/call")
		})
	}
	// The files are there: the binding wrote, not merely answered.
	entries, err := os.ReadDir(files)
	if err != nil {
		b.Fatal(err)
	}
	if int64(len(entries)) != created.Load() {
		b.Fatalf("%d files in %s after %d localstorage creates", len(entries), files, created.Load())
	}
}

// selfCPU is this process's user and system CPU seconds so far.
func selfCPU(b *testing.B) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func cpu(b *testing.B, pid int) float64 {
	s, err := procstat.CPUSeconds(pid)
	if err != nil {
		b.Fatal(err)
	}
	return s
}
