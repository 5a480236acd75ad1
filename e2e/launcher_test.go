package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/internal/daprtest"
	"github.com/daprfn/shop/internal/launch"
)

// launcher is a running `shop run -f FILE` and what it printed.
type launcher struct {
	out  *daprtest.SyncBuffer
	cmd  *exec.Cmd
	done chan struct{} // closed once the launcher exited; err is then set
	err  error
}

// startLauncher runs the launcher on the run file and waits until it says
// the shop is up (it says so once every sidecar is healthy). The launcher is
// killed at the end of the test if it still runs; its output is logged when
// the test failed.
func startLauncher(t *testing.T, file string) *launcher {
	t.Helper()
	l := &launcher{out: &daprtest.SyncBuffer{}, done: make(chan struct{})}
	l.cmd = exec.Command(shopBinary, "run", "-f", file, "--daprd", daprtest.Binary(t))
	l.cmd.Stdout, l.cmd.Stderr = l.out, l.out
	l.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, l.cmd.Start())
	go func() { l.err = l.cmd.Wait(); close(l.done) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("launcher output:\n%s", l.out.String())
		}
		_ = l.cmd.Process.Kill()
	})
	require.Eventually(t, func() bool { return l.exited() || strings.Contains(l.out.String(), "The shop is up.") }, 90*time.Second, 100*time.Millisecond,
		"the launcher says the shop is up within 90s")
	if l.exited() {
		t.Fatalf("the launcher exited before the shop was up: %v", l.err)
	}
	return l
}

// exited reports whether the launcher process is gone.
func (l *launcher) exited() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and expects the launcher to stop every process of the
// run and exit 0 within 45s.
func (l *launcher) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, l.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-l.done:
		require.NoError(t, l.err, "the launcher exits 0 on SIGTERM")
	case <-time.After(45 * time.Second):
		t.Fatal("the launcher did not stop within 45s")
	}
	assert.Contains(t, l.out.String(), "stopping: apps first")
}

// embeddedRun is the embedded shop (`make run`'s run file) started by the
// launcher on free ports, with its data in dir.
type embeddedRun struct {
	*launcher
	dir, appID, url string
	appPort         int
	metricsPort     int // the app's own (appMetricsPort)
	storefrontPort  int // the storefront's page, when the app serves it
}

// launchEmbedded starts the launcher on a run file like
// deploy/dapr-embedded.yaml, with env added to the app's and the components
// of components/embedded changed as repl says, and waits until
// the shop is up.
func launchEmbedded(t *testing.T, env, repl map[string]string) *embeddedRun {
	t.Helper()
	return launchEmbeddedAt(t, "..", shopBinary, env, repl)
}

// launchEmbeddedAt is launchEmbedded for the repository at root and the
// shop binary bin: the embedded app serves what root's
// deploy/dapr-embedded.yaml names, behind its sidecar's API allowlist.
func launchEmbeddedAt(t *testing.T, root, bin string, env, repl map[string]string) *embeddedRun {
	t.Helper()
	shipped, err := launch.Load(filepath.Join(root, "deploy", "dapr-embedded.yaml"))
	require.NoError(t, err)
	require.Len(t, shipped.Apps, 1)
	config, err := filepath.Abs(filepath.Join(root, "deploy", shipped.Apps[0].ConfigFilePath))
	require.NoError(t, err)
	r := &embeddedRun{dir: t.TempDir(), appID: daprtest.UniqueID("order-service")}
	require.NoError(t, os.MkdirAll(filepath.Join(r.dir, "components"), 0o755))
	for name, doc := range repoComponentsAt(t, root, []string{"embedded"}, map[string]string{"order": r.appID}, repl) {
		require.NoError(t, os.WriteFile(filepath.Join(r.dir, "components", name), []byte(doc), 0o644))
	}
	require.NoError(t, os.MkdirAll(filepath.Join(r.dir, "data"), 0o755))
	httpPort := daprtest.FreePort(t)
	r.appPort, r.metricsPort = daprtest.FreePort(t), daprtest.FreePort(t)
	var extra strings.Builder
	if _, ok := shipped.Apps[0].Env["STOREFRONT_PORT"]; ok {
		r.storefrontPort = daprtest.FreePort(t)
		fmt.Fprintf(&extra, "    STOREFRONT_PORT: \"%d\"\n", r.storefrontPort)
	}
	for k, v := range env {
		fmt.Fprintf(&extra, "    %s: %q\n", k, v)
	}
	run := fmt.Sprintf(`version: 1
apps:
- appID: %s
  appDirPath: .
  appPort: %d
  daprHTTPPort: %d
  daprGRPCPort: %d
  metricsPort: %d
  appMetricsPort: %d
  resourcesPath: ./components
  configFilePath: %s
  command: [%q, "serve"]
  env:
    FUNCTIONS: %s
%s`, r.appID, r.appPort, httpPort, daprtest.FreePort(t), daprtest.FreePort(t), r.metricsPort, config, bin, shipped.Apps[0].Env["FUNCTIONS"], extra.String())
	file := filepath.Join(r.dir, "dapr.yaml")
	require.NoError(t, os.WriteFile(file, []byte(run), 0o644))
	r.url = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	r.launcher = startLauncher(t, file)
	return r
}

func (r *embeddedRun) placeOrder(t *testing.T, quantity int) string {
	t.Helper()
	status, body := post(t, r.url+"/v1.0/invoke/"+r.appID+"/method/orders", fmt.Sprintf(`{"productId": "product-1", "quantity": %d, "customerEmail": "customer@example.com"}`, quantity))
	require.Equal(t, http.StatusOK, status, body)
	return decodeOrderID(t, body)
}

func (r *embeddedRun) hasEmail(id string) bool {
	_, err := os.Stat(filepath.Join(r.dir, "data", "emails", id+".eml"))
	return err == nil
}

func TestLauncherRunsTheEmbeddedShopAndStopsEverything(t *testing.T) {
	r := launchEmbedded(t, nil, nil)
	assert.Contains(t, r.out.String(), "curl -X POST "+strings.Replace(r.url, "127.0.0.1", "localhost", 1)+"/v1.0/invoke/"+r.appID+"/method/orders")
	assert.Contains(t, r.out.String(), "["+r.appID+"] ", "app log lines are prefixed with the app-id")

	id := r.placeOrder(t, 2)
	require.Eventually(t, func() bool { return r.hasEmail(id) }, 20*time.Second, 100*time.Millisecond, "the email file lands in the data dir")
	_, err := os.Stat(filepath.Join(r.dir, "data", "orders", id+".json"))
	require.NoError(t, err)

	// The launcher gives each app and its daprd an APP_API_TOKEN: the app
	// port answers nobody else.
	direct, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/orders/%s", r.appPort, id))
	assert.Equal(t, http.StatusUnauthorized, direct, "a call around the sidecar is refused: %s", body)
	assert.Contains(t, body, `"code":"unauthorized"`)
	// The app's own metrics count the order by trigger and outcome.
	scrape := func() string {
		status, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", r.metricsPort))
		require.Equal(t, http.StatusOK, status)
		return body
	}
	assert.Contains(t, scrape(), `function_deliveries_total{app_id="`+r.appID+`",name="POST /orders",outcome="success",trigger="invoke"} 1`)
	delivered := regexp.MustCompile(`function_deliveries_total\{app_id="` + regexp.QuoteMeta(r.appID) + `",name="pubsub/orders",outcome="success",trigger="topic"\} [1-9]`)
	assert.Eventually(t, func() bool { return delivered.MatchString(scrape()) }, 10*time.Second, 100*time.Millisecond, "the order event's delivery is counted")
	assert.Contains(t, r.out.String(), fmt.Sprintf("metrics http://localhost:%d/metrics", r.metricsPort), "the banner names the metrics port")
	health, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", r.appPort))
	assert.Equal(t, http.StatusOK, health, "probes need no token")

	r.stop(t)
	left, _ := exec.Command("pgrep", "-f", r.appID).Output()
	assert.Empty(t, strings.TrimSpace(string(left)), "no process of the run may be left")
}

// pubsub.in-memory, the embedded mode's pub/sub, delivers one event at a
// time and blocks every publish while a delivery is being retried. With the
// email sink failing, each order used to wait its whole ORDER_TIMEOUT for
// its publish. Now only the first order that meets the stuck publish waits
// OUTBOX_DELIVERY_WAIT; later ones are answered after their commit, and the
// outbox sweep delivers every event once the sink is back.
func TestEmbeddedShopKeepsTakingOrdersWhileEmailsFail(t *testing.T) {
	const orderTimeout = 30 * time.Second
	r := launchEmbedded(t, map[string]string{"ORDER_TIMEOUT": orderTimeout.String(), "OUTBOX_DELIVERY_WAIT": "300ms"}, nil)
	first := r.placeOrder(t, 1)
	require.Eventually(t, func() bool { return r.hasEmail(first) }, 20*time.Second, 100*time.Millisecond)

	emails := filepath.Join(r.dir, "data", "emails")
	require.NoError(t, os.RemoveAll(emails))
	require.NoError(t, os.WriteFile(emails, nil, 0o644), "a file where the directory was: every email write fails")
	ids := []string{}
	for range 5 {
		start := time.Now()
		ids = append(ids, r.placeOrder(t, 1))
		assert.Less(t, time.Since(start), orderTimeout/2, "an order does not wait out its ORDER_TIMEOUT behind a stuck event")
	}
	require.Eventually(t, func() bool {
		return strings.Contains(r.out.String(), "commits do not wait for their events")
	}, 10*time.Second, 100*time.Millisecond)
	for _, id := range ids {
		assert.False(t, r.hasEmail(id))
	}

	require.NoError(t, os.Remove(emails))
	require.NoError(t, os.Mkdir(emails, 0o755))
	require.Eventually(t, func() bool {
		for _, id := range ids {
			if !r.hasEmail(id) {
				return false
			}
		}
		return true
	}, 90*time.Second, 250*time.Millisecond, "every order is emailed once the sink is back")
	files, err := os.ReadDir(emails)
	require.NoError(t, err)
	assert.Len(t, files, len(ids), "one email file per order")
	for _, id := range append([]string{first}, ids...) {
		status, body := get(t, r.url+"/v1.0/invoke/"+r.appID+"/method/orders/"+id)
		assert.Equal(t, http.StatusOK, status, body)
	}
}

// pubsub.in-memory drops an event whose delivery still fails after the
// Resiliency retries, first on the orders topic, then on its dead-letter
// topic. The dead-letter handler keeps what it cannot send, and the
// email-sweep cron sends it once the sink is back. The retries are cut to
// two here so that they run out in a second, not in minutes.
func TestEmbeddedShopSendsAnEmailThatOutlastedEveryRetry(t *testing.T) {
	r := launchEmbedded(t, nil, map[string]string{
		"maxRetries: 20": "maxRetries: 2", "maxInterval: 15s": "maxInterval: 200ms", `value: "@every 30s"`: `value: "@every 1s"`,
	})
	emails := filepath.Join(r.dir, "data", "emails")
	require.NoError(t, os.RemoveAll(emails))
	require.NoError(t, os.WriteFile(emails, nil, 0o644), "a file where the directory was: every email write fails")
	id := r.placeOrder(t, 1)
	require.Eventually(t, func() bool {
		return strings.Contains(r.out.String(), "dead-lettered order event could not be sent either; kept for the email sweep")
	}, 30*time.Second, 100*time.Millisecond, "both topics' retries ran out")
	assert.False(t, r.hasEmail(id))

	require.NoError(t, os.Remove(emails))
	require.NoError(t, os.Mkdir(emails, 0o755))
	require.Eventually(t, func() bool { return r.hasEmail(id) }, 30*time.Second, 200*time.Millisecond, "the email sweep sends the kept email")
	require.Eventually(t, func() bool { return strings.Contains(r.out.String(), "kept order confirmations sent") }, 10*time.Second, 100*time.Millisecond)
	files, err := os.ReadDir(emails)
	require.NoError(t, err)
	assert.Len(t, files, 1)
}
