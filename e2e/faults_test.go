package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/internal/daprtest"
)

// The fault tests run a bounded stream of orders at the distributed shop on
// loopback, break one part in the middle, bring it back and end with the
// same audit: every order answered 200 is stored, has its order file and one
// email; every stored order is emailed; stock is the start minus what the
// stored orders took (no stock leaked by orders that failed).

const faultStock = 100000

// faultEnv makes the recovery paths fast enough for a test: orders give up
// after 3 s, unconfirmed holds are settled after 5 s, silent outbox owners
// are adopted after 5 s.
var faultEnv = []string{
	fmt.Sprintf("CATALOG=product-1:Laptop:%d,product-2:Mouse:50,product-3:Keyboard:25", faultStock),
	"ORDER_TIMEOUT=3s", "HOLD_TTL=5s", "OUTBOX_RETRY_AFTER=1s", "OUTBOX_STALE_AFTER=5s", "SHUTDOWN_TIMEOUT=10s",
}

// loadAnswer is one POST /orders of a load.
type loadAnswer struct {
	status int // 0: no HTTP answer (transport error)
	body   string
	took   time.Duration
	at     time.Time
}

// orderLoad posts orders from workers until stopped or max orders are sent.
type orderLoad struct {
	mu      sync.Mutex
	answers []loadAnswer
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startLoad(s *distributedShop, workers, max int) *orderLoad {
	url := s.order.daprd.URL("/v1.0/invoke/" + s.order.appID + "/method/orders")
	return startLoadTo(&http.Client{Timeout: 20 * time.Second}, url, loadOptions{workers: workers, max: max})
}

// loadOptions shape a load: workers post orders one after the other, each
// pausing between orders (5 ms unless set), until max orders are sent;
// with idempotencyKeys every order carries an Idempotency-Key of its own.
type loadOptions struct {
	workers, max    int
	pause           time.Duration
	idempotencyKeys bool
}

// startLoadTo posts orders to url with client.
func startLoadTo(client *http.Client, url string, o loadOptions) *orderLoad {
	if o.pause == 0 {
		o.pause = 5 * time.Millisecond // bounded: ~8 workers x <200/s
	}
	l := &orderLoad{stop: make(chan struct{})}
	run := daprtest.UniqueID("load")
	var sent sync.Mutex
	n := 0
	for w := range o.workers {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				sent.Lock()
				if n >= o.max {
					sent.Unlock()
					return
				}
				n++
				sent.Unlock()
				body := fmt.Sprintf(`{"productId":"product-1","quantity":1,"customerEmail":"w%d-%d@example.com"}`, w, i)
				start := time.Now()
				a := loadAnswer{at: start}
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if o.idempotencyKeys {
					req.Header.Set("Idempotency-Key", fmt.Sprintf("%s-%d-%d", run, w, i))
				}
				resp, err := client.Do(req)
				if err == nil {
					var b []byte
					b, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					a.status, a.body = resp.StatusCode, string(b)
					if err != nil { // a cut answer is no answer
						a.status, a.body = 0, fmt.Sprintf("status %d, then reading the body: %v", resp.StatusCode, err)
					}
				} else {
					a.body = err.Error()
				}
				a.took = time.Since(start)
				l.mu.Lock()
				l.answers = append(l.answers, a)
				l.mu.Unlock()
				time.Sleep(o.pause)
			}
		})
	}
	return l
}

// finish stops the load and returns every answer.
func (l *orderLoad) finish() []loadAnswer {
	close(l.stop)
	l.wg.Wait()
	return l.answers
}

func (l *orderLoad) count() int { l.mu.Lock(); defer l.mu.Unlock(); return len(l.answers) }

// waitOrders waits until the load has sent at least n more orders.
func (l *orderLoad) waitOrders(t *testing.T, n int) {
	t.Helper()
	target := l.count() + n
	require.Eventually(t, func() bool { return l.count() >= target }, 60*time.Second, 20*time.Millisecond, "the load makes progress")
}

// auditSettle is how long the audit waits for the deferred work to settle.
var auditSettle = 90 * time.Second

type auditResult struct {
	ok, failed, stored, emailed int
}

// window is a span of time in which the order app was down.
type window struct{ from, to time.Time }

// auditedShop is a running shop the audit reads: its order files, emails,
// stock, and its orders through the order-service.
type auditedShop interface {
	orderFiles(t *testing.T) map[string]bool
	emails(t *testing.T) map[string]int
	stock(t *testing.T, product string) int
	getOrder(t *testing.T, id string) (int, string)
}

func (s *distributedShop) orderFiles(t *testing.T) map[string]bool { return orderFiles(t, s.orderDir) }

func (s *distributedShop) getOrder(t *testing.T, id string) (int, string) {
	return get(t, s.order.daprd.URL("/v1.0/invoke/"+s.order.appID+"/method/orders/"+id))
}

// audit checks the shop's promises after a fault; it waits for the deferred
// work (outbox sweep and adoption, redelivery, hold sweep) to settle.
//
// appDown are the spans in which the order app was killed or stopped. daprd 1.18.2
// answers some invocations it could not deliver to a dead app with 200 and
// an empty body (its HTTP directmessaging writes nothing when the channel
// returns neither a response nor an error). Such an answer carries no order
// id, so a client cannot take it for a placed order; the audit counts it as
// failed, and fails on one outside those spans.
func audit(t *testing.T, s auditedShop, answers []loadAnswer, appDown ...window) auditResult {
	t.Helper()
	var r auditResult
	okIDs := map[string]bool{}
	for _, a := range answers {
		if a.status == http.StatusOK && a.body == "" {
			r.failed++
			// In flight at any time the app was down: a request sent just
			// before the stop can reach the app after its listener closed.
			inside := false
			for _, w := range appDown {
				inside = inside || (!a.at.After(w.to) && !a.at.Add(a.took).Before(w.from))
			}
			assert.True(t, inside, "an empty 200 from daprd while the order app was up, sent at %s, answered in %s", a.at.Format("15:04:05.000"), a.took)
			continue
		}
		if a.status == http.StatusOK {
			okIDs[decodeOrderID(t, a.body)] = true
			r.ok++
			continue
		}
		r.failed++
		// A retried order whose first try is still being placed elsewhere
		// (its replica cut off) is told so, and has failed for its client.
		inUse := a.status == http.StatusConflict && strings.Contains(a.body, "idempotency_key_in_use")
		if a.status != 0 && !inUse {
			assert.GreaterOrEqual(t, a.status, 500, "only faults fail orders here: %d %s", a.status, a.body)
			assert.True(t, json.Valid([]byte(a.body)), "a failed order is answered with JSON: %d %q", a.status, a.body)
			assert.NotContains(t, a.body, "goroutine ", "no stack trace in an answer")
		}
	}
	require.NotZero(t, r.ok, "some orders succeeded")

	var problems []string
	settled := func() bool {
		problems = problems[:0]
		files := s.orderFiles(t)
		emails := s.emails(t)
		for id := range okIDs {
			if !files[id] {
				problems = append(problems, "order "+id+" answered 200 has no order file")
			}
		}
		for id := range files {
			if emails[id] != 1 {
				problems = append(problems, fmt.Sprintf("stored order %s has %d emails", id, emails[id]))
			}
		}
		for id := range emails {
			if !files[id] {
				problems = append(problems, "email for "+id+", which is not stored")
			}
		}
		if got, want := s.stock(t, "product-1"), faultStock-len(files); got != want {
			problems = append(problems, fmt.Sprintf("stock is %d, want %d (start %d - %d stored orders)", got, want, faultStock, len(files)))
		}
		r.stored, r.emailed = len(files), len(emails)
		return len(problems) == 0
	}
	if !assert.Eventually(t, settled, auditSettle, 500*time.Millisecond) {
		for _, p := range problems[:min(len(problems), 20)] {
			t.Error(p)
		}
		return r
	}
	for id := range okIDs {
		status, body := s.getOrder(t, id)
		if !assert.Equal(t, http.StatusOK, status, "order %s answered 200 is stored: %s", id, body) {
			break
		}
	}
	t.Logf("audit: %d answered 200, %d failed, %d stored, %d emailed, stock %d", r.ok, r.failed, r.stored, r.emailed, faultStock-r.stored)
	return r
}

func orderFiles(t *testing.T, dir string) map[string]bool {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := map[string]bool{}
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			out[id] = true
		}
	}
	return out
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// faultUnderLoad starts the shop on redis, runs a stream of orders, lets
// fault break and restore a part once 150 orders went through, and returns
// the answers after 150 more; fault returns the span in which the order app
// was down, if it took it down. env adds to faultEnv.
func faultUnderLoad(t *testing.T, redis *daprtest.Redis, fault func(s *distributedShop) []window, env ...string) (*distributedShop, []loadAnswer, []window) {
	t.Helper()
	s := startShop(t, redis.Addr, shopOptions{env: append(slices.Clone(faultEnv), env...)})
	load := startLoad(s, 8, 3000)
	load.waitOrders(t, 150)
	down := fault(s)
	load.waitOrders(t, 150)
	return s, load.finish(), down
}

// orderAppDown runs stop, waits a moment, runs start and returns the span.
func orderAppDown(stop, start func()) []window {
	w := window{from: time.Now()}
	stop()
	time.Sleep(500 * time.Millisecond)
	start()
	w.to = time.Now()
	return []window{w}
}

func TestFaultNotificationAppKilledUnderLoad(t *testing.T) {
	s, answers, _ := faultUnderLoad(t, daprtest.StartRedis(t), killNotification(t), "NOTIFICATION_BULK=0")
	r := audit(t, s, answers)
	assert.Zero(t, r.failed, "the order path does not depend on the notification app")
}

// The same with bulk delivery: batches daprd was holding or had handed the
// killed app are redelivered or dead-lettered and sent, each order once.
func TestFaultNotificationAppKilledUnderLoadWithBulk(t *testing.T) {
	s, answers, _ := faultUnderLoad(t, daprtest.StartRedis(t), killNotification(t), "NOTIFICATION_BULK=20", "NOTIFICATION_BULK_AWAIT=20ms")
	r := audit(t, s, answers)
	assert.Zero(t, r.failed, "the order path does not depend on the notification app")
}

// killNotification kills the notification app for longer than the delivery
// retries (10 x 200 ms): daprd dead-letters what it could not deliver, and
// the dead-letter handler sends it.
func killNotification(t *testing.T) func(*distributedShop) []window {
	return func(s *distributedShop) []window {
		s.notification.kill(t)
		// Past the topic's 2 s of retries, and well within the dead-letter
		// topic's 2 s after them once the app's restart is counted.
		time.Sleep(2500 * time.Millisecond)
		s.notification.restart(t)
		return nil
	}
}

func TestFaultOrderAppKilledUnderLoad(t *testing.T) {
	s, answers, down := faultUnderLoad(t, daprtest.StartRedis(t), func(s *distributedShop) []window {
		return orderAppDown(func() { s.order.kill(t) }, func() { s.order.restart(t) })
	})
	audit(t, s, answers, down...)
}

func TestFaultOrderDaprdKilledUnderLoad(t *testing.T) {
	s, answers, _ := faultUnderLoad(t, daprtest.StartRedis(t), func(s *distributedShop) []window {
		s.order.daprd.Kill()
		time.Sleep(500 * time.Millisecond)
		s.order.daprd.Restart(t)
		s.order.daprd.WaitHealthy(t)
		return nil
	})
	audit(t, s, answers)
}

func TestFaultRedisRestartedUnderLoad(t *testing.T) {
	redis := daprtest.StartDurableRedis(t)
	s, answers, _ := faultUnderLoad(t, redis, func(*distributedShop) []window {
		redis.Kill()
		time.Sleep(4 * time.Second) // longer than ORDER_TIMEOUT: orders in the outage fail
		redis.Restart(t)
		return nil
	})
	r := audit(t, s, answers)
	assert.NotZero(t, r.failed, "orders during the outage failed")
	for _, a := range answers {
		if a.status != http.StatusOK {
			// ORDER_TIMEOUT is 3 s; daprd and the client add little.
			assert.Less(t, a.took, 8*time.Second, "a failed order answers within its deadline: %d %s", a.status, a.body)
			for _, internal := range []string{"rpc error", "dial tcp", "redis", "connection refused"} {
				assert.NotContains(t, strings.ToLower(a.body), internal, "the answer shows no internal error text")
			}
		}
	}
}

func TestFaultGracefulShutdownUnderLoad(t *testing.T) {
	var log string
	s, answers, down := faultUnderLoad(t, daprtest.StartRedis(t), func(s *distributedShop) []window {
		return orderAppDown(func() {
			s.order.stop(t) // SIGTERM: drains in flight, exits 0 (asserted by stop)
			log = s.order.log.String()
		}, func() { s.order.restart(t) })
	})
	audit(t, s, answers, down...)
	for _, a := range answers {
		assert.NotZero(t, a.status, "the sidecar stays up: every order gets an HTTP answer (%s)", a.body)
	}
	assert.NotContains(t, log, "level=ERROR", "a graceful stop logs no error")
}

func TestPoisonEventIsDeadLetteredOnce(t *testing.T) {
	redis := daprtest.StartRedis(t)
	s := startShop(t, redis.Addr, shopOptions{})
	const id = "poison-1"
	ce := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"test","type":"com.daprfn.order.confirmed","datacontenttype":"application/json","data":{"orderId":"../../etc/passwd","customerEmail":"a@example.com"}}`, id)
	postCloudEvent(t, s.notification.daprd.URL("/v1.0/publish/pubsub/"+s.topic), ce)
	url := s.notification.daprd.URL("/v1.0/state/notification-state/deadletter-" + id)
	require.Eventually(t, func() bool { st, _ := get(t, url); return st == http.StatusOK }, 20*time.Second, 100*time.Millisecond, "the dead-letter handler records the event")
	_, rec := get(t, url)
	assert.Contains(t, rec, "etc/passwd")
	time.Sleep(2 * time.Second)
	assert.Empty(t, s.emails(t), "no email for a poison event")
	files, _ := filepath.Glob(filepath.Join(s.emailDir, "..", "*passwd*"))
	assert.Empty(t, files, "nothing written outside the email directory")
	assert.Equal(t, 1, strings.Count(s.notification.log.String(), "order event dead-lettered"), "dead-lettered once, not retried forever")
}
