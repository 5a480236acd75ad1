// Package stocktest serves the inventory function on the fake sidecar and
// records what its clients send it: the support the tests of the stock and
// lease clients share.
package stocktest

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/bindings/memory"
	"github.com/daprfn/shop/functions/inventory"
	"github.com/daprfn/shop/functions/orderevent"
	"github.com/daprfn/shop/runtime"
	"github.com/daprfn/shop/runtime/runtimetest"
)

// AppID is the inventory's app id on the fake sidecar.
const AppID = "inventory-service"

// Routes chooses what the inventory serves.
type Routes int

const (
	// Seed serves only the seed's POST /check.
	Seed Routes = iota
	// Ours adds POST /reserve and POST /confirm.
	Ours
	// Leasing adds POST /lease too.
	Leasing
)

// Inventory serves the inventory function with stock units of product-1
// ("Laptop") as AppID, closed when the test ends. With orders, its hold
// sweep settles the holds and leases older than a nanosecond by them.
func Inventory(t *testing.T, routes Routes, stock int, orders orderevent.Lookup) (*runtimetest.Sidecar, *inventory.Service) {
	t.Helper()
	cfg := inventory.Config{Catalog: []inventory.Item{{ID: "product-1", Name: "Laptop", Stock: stock}}}
	if orders != nil {
		cfg.Orders, cfg.HoldTTL = orders, 1
	}
	inv, err := inventory.New(memory.NewStore(), cfg)
	require.NoError(t, err)
	t.Cleanup(inv.Close)
	app := runtime.New(runtime.Options{})
	runtime.Invoke(app, "POST /check", inv.Check)
	if routes >= Ours {
		runtime.Invoke(app, "POST /reserve", inv.Reserve)
		runtime.Invoke(app, "POST /confirm", inv.Confirm)
	}
	if routes >= Leasing {
		runtime.Invoke(app, "POST /lease", inv.Lease)
	}
	sc := runtimetest.New()
	sc.Serve(AppID, app)
	return sc, inv
}

// Left is the stock of product-1.
func Left(t *testing.T, inv *inventory.Service) int {
	t.Helper()
	l, err := inv.List(context.Background(), struct{}{})
	require.NoError(t, err)
	return l["product-1"].Stock
}

// Recorder passes calls on and records each as its method and the number
// of orders its body carried ("reserve:3", "reserve:1+confirm:2",
// "check:1", "lease:grant+settle:1"); while held, calls wait.
type Recorder struct {
	mu   sync.Mutex
	next bindings.Invoker
	log  []string
	hold chan struct{}
}

// NewRecorder returns a Recorder passing calls on to next.
func NewRecorder(next bindings.Invoker) *Recorder { return &Recorder{next: next} }

// Invoke implements bindings.Invoker.
func (r *Recorder) Invoke(ctx context.Context, appID, verb, method string, body []byte) ([]byte, error) {
	var b struct {
		Orders, Confirm, Settle []json.RawMessage
		Grant                   json.RawMessage
	}
	_ = json.Unmarshal(body, &b)
	call := method + ":" + strconv.Itoa(max(len(b.Orders), 1))
	if len(b.Confirm) > 0 {
		call += "+confirm:" + strconv.Itoa(len(b.Confirm))
	}
	if method == "lease" {
		var parts []string
		if len(b.Grant) > 0 && string(b.Grant) != "null" {
			parts = append(parts, "grant")
		}
		if len(b.Settle) > 0 {
			parts = append(parts, "settle:"+strconv.Itoa(len(b.Settle)))
		}
		call = "lease:" + strings.Join(parts, "+")
	}
	r.mu.Lock()
	r.log = append(r.log, call)
	hold, next := r.hold, r.next
	r.mu.Unlock()
	if hold != nil {
		<-hold
	}
	return next.Invoke(ctx, appID, verb, method, body)
}

// Calls returns the calls recorded so far.
func (r *Recorder) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.log...)
}

// Hold makes the calls from now on wait until Release.
func (r *Recorder) Hold() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hold = make(chan struct{})
}

// Release lets the held calls and those after them through.
func (r *Recorder) Release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	close(r.hold)
	r.hold = nil
}

// Route sends the calls from now on to next.
func (r *Recorder) Route(next bindings.Invoker) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next = next
}

// Failing answers every call with the status Fail set, while it is not 0.
type Failing struct {
	Next   bindings.Invoker
	mu     sync.Mutex
	status int
}

// Fail sets the status every call is answered with; 0 passes calls on.
func (f *Failing) Fail(status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = status
}

// Invoke implements bindings.Invoker.
func (f *Failing) Invoke(ctx context.Context, appID, verb, method string, body []byte) ([]byte, error) {
	f.mu.Lock()
	st := f.status
	f.mu.Unlock()
	if st != 0 {
		return nil, &bindings.InvokeError{AppID: appID, Method: method, Status: st, Body: `{"error":"refused"}`}
	}
	return f.Next.Invoke(ctx, appID, verb, method, body)
}
