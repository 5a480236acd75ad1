package runtimetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/bindings/memory"
	"github.com/daprfn/shop/runtime"
	"github.com/daprfn/shop/runtime/dapr"
)

// Sidecar is a fake of daprd and its components, shared by every app served
// on it (as one Redis is shared by several daprds).
type Sidecar struct {
	State    *memory.Store
	Pub      *memory.Publisher
	Bindings *memory.Bindings
	// InternalToken, when set, goes with every call Invoke makes as
	// runtime.InternalTokenHeader, as the shop's sidecar client sends it;
	// Do sends only the headers it is given, as an outside caller would.
	InternalToken string

	mu         sync.Mutex
	apps       map[string]*served
	deliveries []Delivery
}

type served struct {
	app     *runtime.App
	handler http.Handler
}

// Delivery is one topic delivery the fake made and the app's answer.
type Delivery struct {
	AppID, Pubsub, Topic, EventID string
	Status                        string // SUCCESS, RETRY or DROP
}

var _ bindings.Invoker = (*Sidecar)(nil)

// New returns a fake sidecar with empty in-memory components.
func New() *Sidecar {
	s := &Sidecar{State: memory.NewStore(), Pub: &memory.Publisher{}, Bindings: &memory.Bindings{}, apps: map[string]*served{}}
	s.Pub.Deliver = func(ctx context.Context, p memory.Published) error {
		s.deliver(ctx, p.Pubsub, p.Topic, p.CloudEvent)
		return nil
	}
	return s
}

// Serve makes app reachable as appID: invocations, topic deliveries of its
// subscriptions and input binding events. It panics on a registration error,
// as a test cannot go on with it.
func (s *Sidecar) Serve(appID string, app *runtime.App) {
	if err := app.Err(); err != nil {
		panic(fmt.Sprintf("runtimetest: app %s: %v", appID, err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apps[appID] = &served{app: app, handler: dapr.NewHTTPHandler(app, dapr.HTTPOptions{})}
}

func (s *Sidecar) get(appID string) (*served, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[appID]
	return a, ok
}

// Do sends an HTTP request to appID as daprd's service invocation would and
// returns the app's answer.
func (s *Sidecar) Do(ctx context.Context, appID, verb, path string, body []byte, header http.Header) *http.Response {
	a, ok := s.get(appID)
	if !ok {
		rec := httptest.NewRecorder()
		rec.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(rec, `{"error":"app %s is not served on the fake sidecar","code":"ERR_DIRECT_INVOKE"}`, appID)
		return rec.Result()
	}
	req := httptest.NewRequestWithContext(ctx, verb, "/"+strings.TrimPrefix(path, "/"), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	a.handler.ServeHTTP(rec, req)
	return rec.Result()
}

// Invoke implements bindings.Invoker against the apps served here.
func (s *Sidecar) Invoke(ctx context.Context, appID, verb, method string, body []byte) ([]byte, error) {
	var h http.Header
	if s.InternalToken != "" {
		h = http.Header{}
		h.Set(runtime.InternalTokenHeader, s.InternalToken)
	}
	resp := s.Do(ctx, appID, verb, method, body, h)
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &bindings.InvokeError{AppID: appID, Method: method, Status: resp.StatusCode, Body: string(out)}
	}
	return out, nil
}

// PublishCloudEvent delivers a structured CloudEvent (as a user would post it
// through the sidecar's publish API) to every subscriber of pubsub/topic.
func (s *Sidecar) PublishCloudEvent(ctx context.Context, pubsub, topic string, cloudEvent []byte) {
	s.deliver(ctx, pubsub, topic, cloudEvent)
}

// deliver adds daprd's extensions and POSTs the event to each subscriber's
// route; a DROP goes on to the subscription's dead-letter topic.
func (s *Sidecar) deliver(ctx context.Context, pubsub, topic string, cloudEvent []byte) {
	var ce map[string]any
	if err := json.Unmarshal(cloudEvent, &ce); err != nil {
		ce = map[string]any{"specversion": "1.0", "id": "raw", "source": "runtimetest", "type": "com.dapr.event.sent",
			"datacontenttype": "text/plain", "data": string(cloudEvent)}
	}
	ce["pubsubname"], ce["topic"] = pubsub, topic
	body, _ := json.Marshal(ce)
	id, _ := ce["id"].(string)

	s.mu.Lock()
	var targets []struct {
		appID string
		a     *served
		sub   runtime.Subscription
	}
	for appID, a := range s.apps {
		for _, sub := range a.app.Subscriptions() {
			if sub.Pubsub == pubsub && sub.Topic == topic {
				targets = append(targets, struct {
					appID string
					a     *served
					sub   runtime.Subscription
				}{appID, a, sub})
			}
		}
	}
	s.mu.Unlock()

	for _, t := range targets {
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, t.sub.Route, bytes.NewReader(body))
		req.Header.Set("Content-Type", runtime.ContentTypeCloudEvent)
		rec := httptest.NewRecorder()
		t.a.handler.ServeHTTP(rec, req)
		status := topicStatus(rec)
		s.mu.Lock()
		s.deliveries = append(s.deliveries, Delivery{AppID: t.appID, Pubsub: pubsub, Topic: topic, EventID: id, Status: status})
		s.mu.Unlock()
		if status == "DROP" && t.sub.DeadLetterTopic != "" {
			s.deliver(ctx, pubsub, t.sub.DeadLetterTopic, cloudEvent)
		}
	}
}

// topicStatus reads an app's answer the way daprd does: 2xx with an empty
// body or SUCCESS is done, 404 or DROP is dropped, anything else is a retry.
func topicStatus(rec *httptest.ResponseRecorder) string {
	switch {
	case rec.Code == http.StatusNotFound:
		return "DROP"
	case rec.Code < 200 || rec.Code > 299:
		return "RETRY"
	}
	var st struct{ Status string }
	if rec.Body.Len() == 0 || json.Unmarshal(rec.Body.Bytes(), &st) != nil || st.Status == "" {
		return "SUCCESS"
	}
	return strings.ToUpper(st.Status)
}

// Deliveries returns the topic deliveries made so far.
func (s *Sidecar) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.deliveries...)
}

// Redeliver delivers the CloudEvent of every event published so far to
// pubsub/topic again, as an at-least-once broker may.
func (s *Sidecar) Redeliver(ctx context.Context, pubsub, topic string) {
	for _, p := range s.Pub.Published() {
		if p.Pubsub == pubsub && p.Topic == topic {
			s.deliver(ctx, pubsub, topic, p.CloudEvent)
		}
	}
}

// FireBinding sends an input binding event to appID as daprd does (cron
// sends an empty body) and returns the app's HTTP status.
func (s *Sidecar) FireBinding(ctx context.Context, appID, name string, data []byte) int {
	a, ok := s.get(appID)
	if !ok {
		return http.StatusNotFound
	}
	probe := httptest.NewRecorder()
	a.handler.ServeHTTP(probe, httptest.NewRequestWithContext(ctx, http.MethodOptions, "/"+name, nil))
	if probe.Code == http.StatusNotFound {
		return http.StatusNotFound
	}
	rec := httptest.NewRecorder()
	a.handler.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodPost, "/"+name, bytes.NewReader(data)))
	return rec.Code
}
