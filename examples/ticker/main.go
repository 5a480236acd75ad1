// Command ticker is a function app with a cron and a topic: every tick of
// the cron input binding "tick" publishes an event to pubsub/ticks, the
// subscriber counts the events it gets, and GET /count answers how many.
//
//	make examples && bin/shop run -f examples/ticker/dapr.yaml
//	curl http://localhost:3611/v1.0/invoke/ticker/method/count
package main

import (
	"context"
	"crypto/rand"
	"sync/atomic"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/runtime"
	"github.com/daprfn/shop/runtime/host"
)

// Tick is the event the cron publishes.
type Tick struct {
	ID string `json:"id"`
}

// Validate implements runtime.Validator: a tick without an id is dropped.
func (t Tick) Validate() error {
	if t.ID == "" {
		return runtime.Invalid("invalid_tick", "tick without id")
	}
	return nil
}

// Ticker publishes ticks and counts those delivered.
type Ticker struct {
	pub   bindings.Publisher
	count atomic.Int64
}

// Publish runs on every tick of the cron: it publishes one event.
func (t *Ticker) Publish(ctx context.Context, _ runtime.BindingEvent[struct{}]) error {
	id := rand.Text()
	return t.pub.Publish(ctx, "pubsub", "ticks", bindings.Event{ID: id, Source: "ticker", Type: "example.tick", Data: Tick{ID: id}})
}

// Count handles a delivered tick. Dapr delivers at least once, so a
// repeated tick counts again here: the example keeps it simple.
func (t *Ticker) Count(_ context.Context, _ runtime.Event[Tick]) error {
	t.count.Add(1)
	return nil
}

// Counted is the answer of GET /count.
type Counted struct {
	Ticks int64 `json:"ticks"`
}

// Total answers GET /count.
func (t *Ticker) Total(context.Context, struct{}) (Counted, error) {
	return Counted{Ticks: t.count.Load()}, nil
}

func main() {
	host.Main(func(h *host.Host) error {
		t := &Ticker{pub: h.Sidecar}
		runtime.Binding(h.App, "tick", t.Publish)
		runtime.Topic(h.App, runtime.Subscription{Pubsub: "pubsub", Topic: "ticks"}, t.Count)
		runtime.Invoke(h.App, "GET /count", t.Total)
		return nil
	})
}
