package e2e

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/internal/daprtest"
	"github.com/daprfn/shop/internal/launch"
)

// The Configuration the launcher gives a daprd that has nowhere to export
// to: it records no metrics and starts no traces, yet a caller's trace
// context still reaches the app.
func TestNoExportersConfigurationOnRealDaprd(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(launch.NoExportersConfig), 0o644))

	for _, tc := range []struct {
		name  string
		args  []string
		quiet bool // no metrics recorded, no trace started
	}{
		{"daprd's default configuration", nil, false},
		{"the launcher's", []string{"--config", cfg}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := make(chan string, 1)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/echo" {
					seen <- r.Header.Get("traceparent")
				}
			})}
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })
			metricsPort := daprtest.FreePort(t)
			d := daprtest.Start(t, daprtest.Options{
				AppID:   daprtest.UniqueID("exporters"),
				AppPort: ln.Addr().(*net.TCPAddr).Port,
				Args:    append([]string{"--metrics-port", strconv.Itoa(metricsPort)}, tc.args...),
			})
			d.WaitHealthy(t)

			invoke := func(traceparent string) string {
				req, err := http.NewRequest(http.MethodPost, d.URL("/v1.0/invoke/"+d.AppID+"/method/echo"), strings.NewReader("{}"))
				require.NoError(t, err)
				if traceparent != "" {
					req.Header.Set("traceparent", traceparent)
				}
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				resp.Body.Close()
				require.Equal(t, http.StatusOK, resp.StatusCode)
				select {
				case tp := <-seen:
					return tp
				case <-time.After(10 * time.Second):
					t.Fatal("daprd answered 200 but the app saw no call")
					return ""
				}
			}
			const callers = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			assert.Equal(t, callers, invoke(callers), "the caller's trace context reaches the app")
			if tc.quiet {
				assert.Empty(t, invoke(""), "no trace started by daprd")
			} else {
				assert.NotEmpty(t, invoke(""), "daprd's tracing middleware hands the app a traceparent")
			}

			resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(metricsPort) + "/metrics")
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			recorded := strings.Contains(string(body), "dapr_http_server_request_count")
			assert.Equal(t, !tc.quiet, recorded, "request metrics recorded")
		})
	}
}
