package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings/conformance"
	daprclient "github.com/daprfn/shop/bindings/dapr"
	"github.com/daprfn/shop/internal/daprtest"
	"github.com/daprfn/shop/runtime"
	"github.com/daprfn/shop/runtime/dapr"
)

type echoIn struct {
	Msg string `json:"msg"`
	N   int    `json:"n"`
}

func (e echoIn) Validate() error {
	if e.N < 0 {
		return runtime.Invalid("invalid_n", "n must be zero or more")
	}
	return nil
}

type itemIn struct{ ID, Color string }

func (i *itemIn) BindRequest(r runtime.Request) error {
	i.ID, i.Color = r.PathValue("id"), r.Query().Get("color")
	return nil
}

// testApp records what the sidecar delivered to it.
type testApp struct {
	events    chan runtime.Event[json.RawMessage]
	conf      chan conformance.Received
	ticks     chan struct{}
	mu        sync.Mutex
	attempts  map[string]int // topic/event id -> deliveries
	deadEvent chan string
}

func newTestApp() *testApp {
	return &testApp{
		events: make(chan runtime.Event[json.RawMessage], 64), conf: make(chan conformance.Received, 64),
		ticks: make(chan struct{}, 64), attempts: map[string]int{}, deadEvent: make(chan string, 8),
	}
}

func (a *testApp) count(topic, id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.attempts[topic+"/"+id]++
	return a.attempts[topic+"/"+id]
}

func (a *testApp) attemptsOf(topic, id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.attempts[topic+"/"+id]
}

type topics struct{ events, raw, conf, flaky, poison, dead string }

func (a *testApp) register(app *runtime.App, tp topics) {
	runtime.Invoke(app, "POST /echo", func(_ context.Context, in echoIn) (echoIn, error) { in.Msg = "echo: " + in.Msg; return in, nil })
	runtime.Invoke(app, "GET /items/{id}", func(_ context.Context, in itemIn) (itemIn, error) { return in, nil })
	sub := func(topic string) runtime.Subscription {
		return runtime.Subscription{Pubsub: "pubsub", Topic: topic, Route: "/events/" + topic}
	}
	record := func(_ context.Context, ev runtime.Event[json.RawMessage]) error { a.events <- ev; return nil }
	runtime.Topic(app, sub(tp.events), record)
	raw := sub(tp.raw)
	raw.Metadata = map[string]string{"rawPayload": "true"}
	runtime.Topic(app, raw, record)
	runtime.Topic(app, sub(tp.conf), func(_ context.Context, ev conformance.Received) error { a.conf <- ev; return nil })
	runtime.Topic(app, sub(tp.flaky), func(_ context.Context, ev runtime.Event[json.RawMessage]) error {
		if a.count(tp.flaky, ev.ID) < 3 {
			return runtime.RetryLater(fmt.Errorf("attempt %d fails on purpose", a.attemptsOf(tp.flaky, ev.ID)))
		}
		return nil
	})
	poison := sub(tp.poison)
	poison.DeadLetterTopic = tp.dead
	runtime.Topic(app, poison, func(_ context.Context, ev runtime.Event[json.RawMessage]) error {
		a.count(tp.poison, ev.ID)
		return runtime.Poison(fmt.Errorf("event %s is poison", ev.ID))
	})
	runtime.Topic(app, sub(tp.dead), func(_ context.Context, ev runtime.Event[json.RawMessage]) error {
		a.deadEvent <- ev.ID
		return nil
	})
	runtime.Binding(app, "tick", func(context.Context, runtime.BindingEvent[struct{}]) error {
		select {
		case a.ticks <- struct{}{}:
		default:
		}
		return nil
	})
}

func TestRuntimeOnRealDaprd(t *testing.T) {
	redis := daprtest.StartRedis(t)
	for _, proto := range []dapr.Protocol{dapr.HTTP, dapr.GRPC} {
		t.Run(string(proto), func(t *testing.T) { runtimeSuite(t, redis.Addr, proto) })
	}
}

func runtimeSuite(t *testing.T, redisAddr string, proto dapr.Protocol) {
	appID := daprtest.UniqueID("rt-" + string(proto))
	tp := topics{
		events: daprtest.UniqueID("events"), raw: daprtest.UniqueID("raw"), conf: daprtest.UniqueID("conf"),
		flaky: daprtest.UniqueID("flaky"), poison: daprtest.UniqueID("poison"), dead: daprtest.UniqueID("dead"),
	}
	filesDir := t.TempDir()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	app := runtime.New(runtime.Options{Logger: log, Middleware: runtime.Defaults(log, 1<<20)})
	rec := newTestApp()
	rec.register(app, tp)

	appPort := daprtest.FreePort(t)
	d := daprtest.Start(t, daprtest.Options{
		AppID: appID, AppPort: appPort, AppProtocol: string(proto),
		Resources: merge(redisComponents(redisAddr), map[string]string{
			"tick.yaml":       cronComponent("tick", "@every 1s"),
			"files.yaml":      localstorageComponent("files", filesDir),
			"resiliency.yaml": inboundRetry("pubsub"),
		}),
	})
	client, err := daprclient.New(daprclient.Config{Address: d.GRPCAddress(), StateStore: "statestore"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	srv, err := dapr.NewServer(app, dapr.ServerConfig{Protocol: proto, Address: "127.0.0.1:" + strconv.Itoa(appPort)}, client)
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		assert.NoError(t, <-served, "server must drain and stop cleanly")
	})
	d.WaitHealthy(t)
	require.Eventually(t, srv.Ready, 20*time.Second, 50*time.Millisecond, "server never saw the sidecar's components")

	t.Run("invocation through the sidecar", func(t *testing.T) {
		status, body := post(t, d.URL("/v1.0/invoke/"+appID+"/method/echo"), `{"msg":"hi","n":2}`)
		assert.Equal(t, http.StatusOK, status)
		assert.JSONEq(t, `{"msg":"echo: hi","n":2}`, body)

		resp, err := http.Get(d.URL("/v1.0/invoke/" + appID + "/method/items/42?color=red"))
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.JSONEq(t, `{"ID":"42","Color":"red"}`, string(b))
	})

	t.Run("bad input is a 400 with a JSON body, never a 500", func(t *testing.T) {
		for _, body := range []string{`{"msg":`, `{"n":"two"}`, `{"n":-1}`} {
			status, got := post(t, d.URL("/v1.0/invoke/"+appID+"/method/echo"), body)
			assert.Equal(t, http.StatusBadRequest, status, body)
			assert.True(t, json.Valid([]byte(got)), "body %q is not JSON", got)
			if proto == dapr.HTTP {
				var e struct{ Error, Code string }
				require.NoError(t, json.Unmarshal([]byte(got), &e))
				assert.NotEmpty(t, e.Error)
				assert.NotEmpty(t, e.Code)
			}
		}
	})

	t.Run("state store conformance", func(t *testing.T) { conformance.StateStore(t, client) })

	t.Run("publisher conformance", func(t *testing.T) { conformance.Publisher(t, client, "pubsub", tp.conf, rec.conf) })

	t.Run("compare-and-swap conformance", func(t *testing.T) { conformance.Update(t, client) })

	t.Run("outbox conformance", func(t *testing.T) { conformance.Outbox(t, client, client, "pubsub", tp.conf, rec.conf) })

	t.Run("publish through the sidecar reaches the topic handler", func(t *testing.T) {
		status, _ := post(t, d.URL("/v1.0/publish/pubsub/"+tp.events), `{"orderId":"o-1","quantity":1}`)
		require.Equal(t, http.StatusNoContent, status)
		ev := waitEvent(t, rec.events, func(ev runtime.Event[json.RawMessage]) bool { return bytes.Contains(ev.Data, []byte("o-1")) })
		assert.JSONEq(t, `{"orderId":"o-1","quantity":1}`, string(ev.Data))
		assert.Equal(t, appID, ev.Source)
		assert.Equal(t, tp.events, ev.Topic)
		assert.NotEmpty(t, ev.ID)
	})

	t.Run("a CloudEvent posted by a user keeps its id", func(t *testing.T) {
		postCloudEvent(t, d.URL("/v1.0/publish/pubsub/"+tp.events), `{"specversion":"1.0","id":"user-ce-1","source":"curl","type":"com.example.order","datacontenttype":"application/json","data":{"orderId":"o-2"}}`)
		ev := waitEvent(t, rec.events, func(ev runtime.Event[json.RawMessage]) bool { return ev.ID == "user-ce-1" })
		assert.Equal(t, "curl", ev.Source)
		assert.Equal(t, "com.example.order", ev.Type)
		assert.JSONEq(t, `{"orderId":"o-2"}`, string(ev.Data))
	})

	t.Run("a raw payload reaches a rawPayload subscription", func(t *testing.T) {
		status, _ := post(t, d.URL("/v1.0/publish/pubsub/"+tp.raw+"?metadata.rawPayload=true"), `{"orderId":"o-raw"}`)
		require.Equal(t, http.StatusNoContent, status)
		ev := waitEvent(t, rec.events, func(ev runtime.Event[json.RawMessage]) bool { return bytes.Contains(ev.Data, []byte("o-raw")) })
		assert.JSONEq(t, `{"orderId":"o-raw"}`, string(ev.Data))
	})

	t.Run("RETRY is redelivered until it succeeds", func(t *testing.T) {
		postCloudEvent(t, d.URL("/v1.0/publish/pubsub/"+tp.flaky), `{"specversion":"1.0","id":"flaky-1","source":"e2e","type":"t","datacontenttype":"application/json","data":{}}`)
		require.Eventually(t, func() bool { return rec.attemptsOf(tp.flaky, "flaky-1") >= 3 }, 20*time.Second, 50*time.Millisecond)
		time.Sleep(1 * time.Second) // a success must end the redeliveries
		assert.Equal(t, 3, rec.attemptsOf(tp.flaky, "flaky-1"))
	})

	t.Run("DROP is not retried and goes to the dead-letter topic", func(t *testing.T) {
		postCloudEvent(t, d.URL("/v1.0/publish/pubsub/"+tp.poison), `{"specversion":"1.0","id":"poison-1","source":"e2e","type":"t","datacontenttype":"application/json","data":{}}`)
		select {
		case id := <-rec.deadEvent:
			assert.Equal(t, "poison-1", id)
		case <-time.After(20 * time.Second):
			t.Fatal("the dropped event never reached the dead-letter topic")
		}
		assert.Equal(t, 1, rec.attemptsOf(tp.poison, "poison-1"), "DROP must not be redelivered")
	})

	t.Run("cron input binding fires the handler", func(t *testing.T) {
		for range 2 {
			select {
			case <-rec.ticks:
			case <-time.After(10 * time.Second):
				t.Fatal("cron binding did not fire")
			}
		}
	})

	t.Run("output binding writes a file", func(t *testing.T) {
		_, err := client.InvokeBinding(context.Background(), "files", "create", []byte(`{"hello":"file"}`), map[string]string{"fileName": "hello.json"})
		require.NoError(t, err)
		b, err := os.ReadFile(filepath.Join(filesDir, "hello.json"))
		require.NoError(t, err)
		assert.JSONEq(t, `{"hello":"file"}`, string(b))
	})
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewBufferString(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// postCloudEvent publishes a structured CloudEvent through a sidecar's
// publish API, as a user with curl would.
func postCloudEvent(t *testing.T, url, ce string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(ce))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/cloudevents+json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode, "publish to %s", url)
}

func waitEvent[T any](t *testing.T, ch <-chan T, match func(T) bool) T {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev := <-ch:
			if match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatal("expected event not delivered within 20s")
		}
	}
}

// With DAPR_API_TOKEN on the sidecar, the client sends it; a client without
// it is refused. A missing component stops the server with an error that
// names it.
func TestTokensAndMissingComponents(t *testing.T) {
	appPort := daprtest.FreePort(t)
	app := runtime.New(runtime.Options{})
	runtime.Invoke(app, "GET /ping", func(context.Context, struct{}) (string, error) { return "pong", nil })
	app.Requires(runtime.Component{Kind: "bindings", Name: "email"})
	d := daprtest.Start(t, daprtest.Options{
		AppID: daprtest.UniqueID("tokens"), AppPort: appPort,
		Env:       []string{"DAPR_API_TOKEN=sidecar-secret", "APP_API_TOKEN=app-secret"},
		Resources: map[string]string{"files.yaml": localstorageComponent("files", t.TempDir())},
	})
	good, err := daprclient.New(daprclient.Config{Address: d.GRPCAddress(), APIToken: "sidecar-secret", StateStore: "statestore"})
	require.NoError(t, err)
	defer good.Close()
	bad, err := daprclient.New(daprclient.Config{Address: d.GRPCAddress(), CallTimeout: 5 * time.Second})
	require.NoError(t, err)
	defer bad.Close()

	srv, err := dapr.NewServer(app, dapr.ServerConfig{Protocol: dapr.HTTP, Address: "127.0.0.1:" + strconv.Itoa(appPort),
		AppToken: "app-secret", ResourcesHint: "components/test"}, good)
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Run(context.Background()) }()
	select {
	case err := <-served:
		require.Error(t, err, "the email binding is missing")
		assert.Contains(t, err.Error(), "bindings/email")
		assert.Contains(t, err.Error(), "components/test")
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not stop on a missing component")
	}

	// The same app without the missing requirement: daprd sends APP_API_TOKEN,
	// which the app demands; a direct caller without it is refused.
	ok := runtime.New(runtime.Options{})
	runtime.Invoke(ok, "GET /ping", func(context.Context, struct{}) (string, error) { return "pong", nil })
	srv2, err := dapr.NewServer(ok, dapr.ServerConfig{Protocol: dapr.HTTP, Address: "127.0.0.1:" + strconv.Itoa(appPort), AppToken: "app-secret"}, good)
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	served2 := make(chan error, 1)
	go func() { served2 <- srv2.Run(ctx) }()
	defer func() { stop(); assert.NoError(t, <-served2) }()
	require.Eventually(t, srv2.Ready, 20*time.Second, 50*time.Millisecond)
	d.WaitHealthy(t)
	req, _ := http.NewRequest(http.MethodGet, d.URL("/v1.0/invoke/"+d.AppID+"/method/ping"), nil)
	req.Header.Set("dapr-api-token", "sidecar-secret")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.JSONEq(t, `"pong"`, string(body))
	direct, err := http.Get("http://127.0.0.1:" + strconv.Itoa(appPort) + "/ping")
	require.NoError(t, err)
	direct.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, direct.StatusCode)

	_, err = bad.LoadedComponents(context.Background())
	require.Error(t, err, "a client without DAPR_API_TOKEN is refused")
	loaded, err := good.LoadedComponents(context.Background())
	require.NoError(t, err)
	assert.Contains(t, loaded, runtime.Component{Kind: "bindings", Name: "files", Type: "bindings.localstorage"})
}
