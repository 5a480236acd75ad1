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
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(filepath.Dir(file), "..", "bin", "mailpit")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("mailpit not found at %s: run `make mailpit-bin` (make test does)", bin)
	}
	smtpPort, uiPort := daprtest.FreePort(t), daprtest.FreePort(t)
	cmd := exec.Command(bin, "--smtp", "127.0.0.1:"+strconv.Itoa(smtpPort), "--listen", "127.0.0.1:"+strconv.Itoa(uiPort),
		"--database", filepath.Join(t.TempDir(), "mailpit.db"))
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
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(smtpPort))
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
	return smtpPort, api
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
