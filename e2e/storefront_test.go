package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/internal/daprtest"
)

// ArtifactsEnv names the directory the browser tests write their
// screenshots to; by default e2e/artifacts/ (ignored by git).
const ArtifactsEnv = "SHOP_TEST_ARTIFACTS"

func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(ArtifactsEnv)
	if dir == "" {
		dir = "artifacts"
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// browser starts a headless Chromium for the test (Debian's chromium) and
// returns a tab in it.
func browser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	require.NotEmpty(t, path, "chromium is missing: install Debian's chromium (apt-get install chromium; .ci/run does)")
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.WindowSize(1280, 1400))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses its sandbox to root, as in CI
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	tab, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	require.NoError(t, chromedp.Do(tab), "start chromium")
	return tab
}

// newTab opens another tab in the browser of tab.
func newTab(t *testing.T, tab context.Context) context.Context {
	t.Helper()
	other, cancel := chromedp.NewContext(tab)
	t.Cleanup(cancel)
	return other
}

// within bounds one step of the tour.
func within(t *testing.T, tab context.Context, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(tab, d)
	t.Cleanup(cancel)
	return ctx
}

// poll waits until the expression is truthy in the tab and returns its value.
func poll[T any](t *testing.T, tab context.Context, expr string, d time.Duration, what string) T {
	t.Helper()
	v, err := chromedp.Run(tab, chromedp.Poll[T](expr, chromedp.WithPollingTimeout(d), chromedp.WithPollingInterval(100*time.Millisecond)))
	require.NoError(t, err, "%s (waited %s for %s)", what, d, expr)
	return v
}

// clear empties a field, as a person selecting its text and deleting it
// would (chromedp's SetValue refuses an empty value).
func clear(id string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Evaluate[bool](`(document.getElementById("`+id+`").value = "") === ""`)(ctx, t)
		return chromedp.Void{}, err
	}
}

// storefrontTour does with a browser what a person would: open the page,
// place an order with the form and watch the stock drop and the order go
// from placed to emailed, in this tab and in a second one; see a bad
// quantity's error; see a dead letter shown as text; see the counters. It
// writes two screenshots, NAME-order.png once the order is emailed and
// NAME.png at the end. publish posts data to a topic through a sidecar.
func storefrontTour(t *testing.T, page string, publish func(topic, body string), name string) {
	tab := browser(t)
	open := func(tab context.Context) {
		t.Helper()
		require.NoError(t, chromedp.Do(within(t, tab, 30*time.Second), chromedp.Navigate(page)))
		poll[bool](t, tab, `document.getElementById("connection").textContent === "Live"`, 20*time.Second, "the page follows the shop")
	}
	open(tab)
	stockOf := `Number(document.querySelector('#products tr[data-product="product-1"]')?.dataset.stock)`
	before := poll[int](t, tab, stockOf, 20*time.Second, "product-1 and its stock are shown")
	require.GreaterOrEqual(t, before, 2, "room for an order of 2")
	second := newTab(t, tab)
	open(second)

	// The order form, as a person fills it: choose, type, click.
	placeOrder := func(quantity string) {
		t.Helper()
		require.NoError(t, chromedp.Do(within(t, tab, 20*time.Second),
			chromedp.SetValue(chromedp.ID("product"), "product-1"),
			clear("quantity"),
			chromedp.SendKeys(chromedp.ID("quantity"), quantity),
			clear("email"),
			chromedp.SendKeys(chromedp.ID("email"), "browser@example.com"),
			chromedp.Click(chromedp.ID("place")),
		))
	}
	placeOrder("2")
	id := poll[string](t, tab, `document.getElementById("order-result").dataset.order`, 30*time.Second, "the order is placed")
	require.True(t, strings.HasPrefix(id, "order-"), id)

	poll[bool](t, tab, stockOf+` === `+strconv.Itoa(before-2), 20*time.Second, "the stock drops by 2")
	row := `document.querySelector('#orders tr[data-order="` + id + `"]')`
	poll[bool](t, tab, row+`?.dataset.step === "emailed"`, 30*time.Second, "the order reaches emailed")
	times, err := chromedp.Run(tab, chromedp.Evaluate[[]string]("[...("+row+").cells].slice(3).map((c) => c.textContent)"))
	require.NoError(t, err)
	for i, step := range []string{"placed", "stored", "emailed"} {
		assert.Regexp(t, `^\d\d:\d\d:\d\d\.\d{3}$`, times[i], "the time it was %s", step)
	}
	poll[bool](t, second, `document.querySelector('#orders tr[data-order="`+id+`"]')?.dataset.step === "emailed"`, 30*time.Second, "the second tab sees the same order arrive")
	email, err := chromedp.Run(tab, chromedp.Evaluate[[]string](`[...document.querySelector('#emails tr[data-order="`+id+`"]').cells].map((c) => c.textContent)`))
	require.NoError(t, err)
	assert.Equal(t, []string{"browser@example.com", "Order confirmation " + id}, email[:2], "the latest emails: to, subject")

	success := poll[int](t, tab, `Number(document.querySelector('#counters tr[data-name="POST /orders"] .success')?.textContent)`, 20*time.Second, "the order function's counters")
	assert.GreaterOrEqual(t, success, 1)
	shoot(t, tab, name+"-order.png") // the page as people first see it work

	placeOrder("0")
	msg := poll[string](t, tab, `document.getElementById("order-error").textContent`, 20*time.Second, "the error is shown")
	assert.Equal(t, "quantity must be a whole number from 1 to 1000", msg, "the order function's own message")

	// What the page shows is text: markup in a dead letter stays text.
	publish("orders-deadletter", `{"orderId":"<img id=pwned src=x>","note":"<b>bold</b>"}`)
	dead := poll[string](t, tab, `[...document.querySelectorAll('#dead-letters td')].map((c) => c.textContent).find((s) => s.includes("pwned"))`, 20*time.Second, "the dead letter is shown")
	assert.Contains(t, dead, `<img id=pwned src=x>`)
	injected, err := chromedp.Run(tab, chromedp.Evaluate[bool](`document.getElementById("pwned") !== null || document.querySelector("#dead-letters b") !== null`))
	require.NoError(t, err)
	assert.False(t, injected, "no element was made from the event's data")

	shoot(t, tab, name+".png")
}

// shoot writes a screenshot of the whole page to the artifacts directory.
func shoot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	file := filepath.Join(artifactsDir(t), name)
	require.NoError(t, os.WriteFile(file, png, 0o644))
	t.Logf("screenshot: %s", file)
}

func TestStorefrontInABrowserEmbedded(t *testing.T) {
	r := launchEmbedded(t, map[string]string{"RESTOCK_LEVEL": "1"}, nil) // the cron restock leaves the stock alone
	require.NotZero(t, r.storefrontPort, "deploy/dapr-embedded.yaml serves the storefront")
	page := fmt.Sprintf("http://127.0.0.1:%d/", r.storefrontPort)
	assert.Contains(t, r.out.String(), fmt.Sprintf("storefront http://localhost:%d/", r.storefrontPort), "the banner names the page")
	storefrontTour(t, page, func(topic, body string) {
		status, got := post(t, r.url+"/v1.0/publish/pubsub/"+topic, body)
		require.Equal(t, http.StatusNoContent, status, got)
	}, "storefront-embedded")
}

func TestStorefrontInABrowserOnRedis(t *testing.T) {
	redis := daprtest.StartRedis(t)
	s := launchSeedTopology(t, redis.Addr, map[string]string{"RESTOCK_LEVEL": "1"}, nil)
	page := "http://127.0.0.1:" + s.apps["storefront"].Env["STOREFRONT_PORT"] + "/"
	storefrontTour(t, page, func(topic, body string) {
		status, got := post(t, s.url("order", "/v1.0/publish/pubsub/"+topic), body)
		require.Equal(t, http.StatusNoContent, status, got)
	}, "storefront-redis")

	t.Run("100 pages following the shop do not stall orders", func(t *testing.T) {
		const pages, orders = 100, 20
		type follower struct {
			mu     sync.Mutex
			stored map[string]bool
		}
		followers := make([]*follower, pages)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for i := range followers {
			f := &follower{stored: map[string]bool{}}
			followers[i] = f
			req, err := http.NewRequestWithContext(ctx, "GET", page+"events", nil)
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			go func() {
				defer resp.Body.Close()
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() {
					line := sc.Text()
					if strings.HasPrefix(line, "data: ") && strings.Contains(line, `"step":"stored"`) {
						id, _, _ := strings.Cut(strings.TrimPrefix(line, `data: {"orderId":"`), `"`)
						f.mu.Lock()
						f.stored[id] = true
						f.mu.Unlock()
					}
				}
			}()
		}
		var wg sync.WaitGroup
		ids := make([]string, orders)
		start := time.Now()
		for i := range ids {
			wg.Go(func() { // no require off the test's goroutine
				resp, err := http.Post(s.url("order", "/v1.0/invoke/"+s.ids["order"]+"/method/orders"), "application/json",
					strings.NewReader(`{"productId": "product-2", "quantity": 1, "customerEmail": "load@example.com"}`))
				if !assert.NoError(t, err) {
					return
				}
				defer resp.Body.Close()
				var answer struct{ OrderID string }
				assert.Equal(t, http.StatusOK, resp.StatusCode)
				assert.NoError(t, json.NewDecoder(resp.Body).Decode(&answer))
				ids[i] = answer.OrderID
			})
		}
		wg.Wait()
		assert.Less(t, time.Since(start), 15*time.Second, "%d orders answered while %d pages follow the shop", orders, pages)
		require.Eventually(t, func() bool {
			for _, f := range followers {
				f.mu.Lock()
				n := 0
				for _, id := range ids {
					if f.stored[id] {
						n++
					}
				}
				f.mu.Unlock()
				if n < orders {
					return false
				}
			}
			return true
		}, 30*time.Second, 200*time.Millisecond, "every page sees every order stored")
	})
}
