package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/internal/daprtest"
)

func TestLauncherRunsTheEmbeddedShopAndStopsEverything(t *testing.T) {
	dir := t.TempDir()
	appID := daprtest.UniqueID("order-service")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "components"), 0o755))
	for name, doc := range repoComponents(t, []string{"embedded"}, map[string]string{"order": appID}, nil) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "components", name), []byte(doc), 0o644))
	}
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "data"), 0o755))
	httpPort, appPort := daprtest.FreePort(t), daprtest.FreePort(t)
	run := fmt.Sprintf(`version: 1
apps:
- appID: %s
  appDirPath: .
  appPort: %d
  daprHTTPPort: %d
  daprGRPCPort: %d
  metricsPort: %d
  resourcesPath: ./components
  command: [%q, "serve"]
  env:
    FUNCTIONS: order,inventory,notification
`, appID, appPort, httpPort, daprtest.FreePort(t), daprtest.FreePort(t), shopBinary)
	file := filepath.Join(dir, "dapr.yaml")
	require.NoError(t, os.WriteFile(file, []byte(run), 0o644))

	out := &daprtest.SyncBuffer{}
	cmd := exec.Command(shopBinary, "run", "-f", file, "--daprd", daprtest.Binary(t))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if t.Failed() {
			t.Logf("launcher output:\n%s", out.String())
		}
	}()

	url := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	require.Eventually(t, func() bool {
		resp, err := http.Get(url + "/v1.0/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusNoContent
	}, 60*time.Second, 200*time.Millisecond)
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "The shop is up.") }, 10*time.Second, 100*time.Millisecond)
	assert.Contains(t, out.String(), "curl -X POST "+strings.Replace(url, "127.0.0.1", "localhost", 1)+"/v1.0/invoke/"+appID+"/method/orders")
	assert.Contains(t, out.String(), "["+appID+"] ", "app log lines are prefixed with the app-id")

	status, body := post(t, url+"/v1.0/invoke/"+appID+"/method/orders", `{"productId": "product-1", "quantity": 2, "customerEmail": "customer@example.com"}`)
	require.Equal(t, http.StatusOK, status, body)
	id := decodeOrderID(t, body)
	require.Eventually(t, func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "data", "emails", id+".eml"))
		return len(m) == 1
	}, 20*time.Second, 100*time.Millisecond, "the email file lands in the data dir")
	_, err := os.Stat(filepath.Join(dir, "data", "orders", id+".json"))
	require.NoError(t, err)

	// The launcher gives each app and its daprd an APP_API_TOKEN: the app
	// port answers nobody else.
	direct, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/orders/%s", appPort, id))
	assert.Equal(t, http.StatusUnauthorized, direct, "a call around the sidecar is refused: %s", body)
	assert.Contains(t, body, `"code":"unauthorized"`)
	health, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", appPort))
	assert.Equal(t, http.StatusOK, health, "probes need no token")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-done:
		require.NoError(t, err, "the launcher exits 0 on SIGTERM")
	case <-time.After(45 * time.Second):
		t.Fatal("the launcher did not stop within 45s")
	}
	assert.Contains(t, out.String(), "stopping: apps first")
	left, _ := exec.Command("pgrep", "-f", appID).Output()
	assert.Empty(t, strings.TrimSpace(string(left)), "no process of the run may be left")
}
