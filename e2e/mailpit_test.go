package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/internal/daprtest"
)

// startMailpit runs the mailpit that `make mailpit-bin` caches in bin/.
func startMailpit(t *testing.T) (smtpPort int, api string) {
	t.Helper()
	smtpPort = daprtest.FreePort(t)
	return smtpPort, startMailpitOn(t, "127.0.0.1:"+strconv.Itoa(smtpPort))
}

// startMailpitOn runs mailpit with its SMTP server on smtpAddr and returns
// its HTTP API's address, on loopback.
func startMailpitOn(t *testing.T, smtpAddr string) (api string) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(filepath.Dir(file), "..", "bin", "mailpit")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("mailpit not found at %s: run `make mailpit-bin` (make test does)", bin)
	}
	uiPort := daprtest.FreePort(t)
	cmd := exec.Command(bin, "--smtp", smtpAddr, "--listen", "127.0.0.1:"+strconv.Itoa(uiPort),
		"--database", filepath.Join(t.TempDir(), "mailpit.db"), "--max", "0", // keep every message (default: the latest 500)
		// No reverse lookup of the client's address: where that address has
		// no name (a pod's), the lookup waits on DNS, and a send that outlasts
		// the binding's deadline is retried: the customer gets two emails.
		"--smtp-disable-rdns")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	log := &daprtest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("mailpit log:\n%s", log.String())
		}
	})
	api = fmt.Sprintf("http://127.0.0.1:%d", uiPort)
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", smtpAddr)
		if err != nil {
			return false
		}
		c.Close()
		resp, err := http.Get(api + "/api/v1/messages")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 100*time.Millisecond)
	return api
}

type mailpitMessages struct {
	Messages []struct {
		Subject string
		To      []struct{ Address string }
	}
}

// An order's confirmation goes over SMTP (components/email-smtp as it
// ships, with the pinned daprd's smtp binding) and is read back from
// mailpit's HTTP API.
func TestShopEmailsOverSMTP(t *testing.T) {
	redis := daprtest.StartRedis(t)
	smtpPort, api := startMailpit(t)
	s := startShop(t, redis.Addr, shopOptions{
		daprdDir: "..",
		components: func(ids map[string]string, _, orderDir string) map[string]string {
			return repoComponents(t, []string{"redis", "email-smtp"}, ids, map[string]string{
				"envRef: REDIS_HOST": "value: " + redis.Addr,
				"value: data/orders": "value: " + orderDir,
				`value: "1025"`:      `value: "` + strconv.Itoa(smtpPort) + `"`,
			})
		},
	})
	status, body := s.placeOrder(t, `{"productId": "product-2", "quantity": 1, "customerEmail": "smtp-customer@example.com"}`)
	require.Equal(t, http.StatusOK, status, body)
	id := decodeOrderID(t, body)

	var got mailpitMessages
	require.Eventually(t, func() bool {
		resp, err := http.Get(api + "/api/v1/messages")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		got = mailpitMessages{}
		return json.NewDecoder(resp.Body).Decode(&got) == nil && len(got.Messages) > 0
	}, 30*time.Second, 200*time.Millisecond, "mailpit received no message")
	require.Len(t, got.Messages, 1)
	assert.Equal(t, "Order confirmation "+id, got.Messages[0].Subject)
	require.Len(t, got.Messages[0].To, 1)
	assert.Equal(t, "smtp-customer@example.com", got.Messages[0].To[0].Address)
}

// Sends at once through one sidecar's SMTP binding each reach their own
// recipient with their own subject. The upstream binding merges a request's
// metadata into the component's in place, so concurrent sends swapped
// recipients and subjects; the pinned daprd gives every send a mailer of
// its own (deploy/daprd/smtp.go).
func TestSMTPBindingKeepsConcurrentSendsApart(t *testing.T) {
	smtpPort := daprtest.FreePort(t)
	api := startMailpitOn(t, "127.0.0.1:"+strconv.Itoa(smtpPort))
	d := daprtest.Start(t, daprtest.Options{AppID: daprtest.UniqueID("smtp"), Resources: map[string]string{
		"email.yaml": daprtest.Component("email", "bindings.smtp", "host", "127.0.0.1", "port", strconv.Itoa(smtpPort),
			"emailFrom", "shop@example.com"),
	}})
	d.WaitOutbound(t)

	// The race's window is short: enough sends at once that the upstream
	// binding mixed some up in each run tried.
	const sends, workers = 1000, 64
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				body := fmt.Sprintf(`{"operation":"create","data":"body %d","metadata":{"emailTo":"to-%d@example.com","subject":"subject %d"}}`, i, i, i)
				resp, err := http.Post(d.URL("/v1.0/bindings/email"), "application/json", strings.NewReader(body))
				if assert.NoError(t, err) {
					resp.Body.Close()
					assert.Less(t, resp.StatusCode, 300, "send %d", i)
				}
			}
		})
	}
	for i := range sends {
		next <- i
	}
	close(next)
	wg.Wait()

	var got mailpitMessages
	require.Eventually(t, func() bool {
		resp, err := http.Get(api + "/api/v1/messages?limit=2000")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		got = mailpitMessages{}
		return json.NewDecoder(resp.Body).Decode(&got) == nil && len(got.Messages) >= sends
	}, 30*time.Second, 200*time.Millisecond, "every send arrives")
	require.Len(t, got.Messages, sends)
	seen := map[string]bool{}
	for _, m := range got.Messages {
		require.Len(t, m.To, 1)
		n, ok := strings.CutPrefix(m.Subject, "subject ")
		require.True(t, ok, m.Subject)
		assert.Equal(t, "to-"+n+"@example.com", m.To[0].Address, "the subject and the recipient of one send")
		assert.False(t, seen[n], "subject %s sent twice", n)
		seen[n] = true
	}
}
