package storefront

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/functions/notification"
	"github.com/daprfn/shop/functions/orderevent"
	"github.com/daprfn/shop/runtime"
	"github.com/daprfn/shop/runtime/metrics"
)

// Config is the storefront's own configuration, read from the environment
// under the prefix STOREFRONT_.
type Config struct {
	Port         int           `envconfig:"PORT" default:"8080" desc:"port of the storefront's web page, its own HTTP listener on LISTEN_ADDRESS (not the Dapr app port); 0 picks a free port and logs it"`
	Apps         []string      `envconfig:"APPS" desc:"app-ids whose function counters the page shows, each read through the sidecar from the runtime's internal route GET /runtime/metrics; empty: INTERNAL_APP_IDS (the launcher sets every app-id of its run file), else this app alone"`
	RefreshEvery time.Duration `envconfig:"REFRESH_EVERY" default:"5s" desc:"while a page is open, how often the storefront reads the stock and every app's counters again; after an order it reads the stock sooner, at most once a second"`
	History      int           `envconfig:"HISTORY" default:"500" desc:"feed events (order steps, dead letters) kept in memory for pages that open or reconnect (Last-Event-ID)"`
}

// Shop is how the storefront reaches the other functions: through its
// sidecar, by app-id.
type Shop struct {
	Invoker   bindings.Invoker
	Orders    string   // the app serving POST /orders
	Inventory string   // the app serving GET /inventory
	Apps      []string // the apps whose counters the page shows
	// OrderKey (orderevent.Key) and EmailKey (notification.SentSigningKey)
	// verify the events the page shows: anyone may publish to a topic, so
	// only events signed by the order function and the notification are
	// shown. Nil shows every event (a deployment without a credential).
	OrderKey, EmailKey []byte
}

// Service is the storefront function.
type Service struct {
	cfg  Config
	shop Shop
	log  *slog.Logger
	feed *feed
	now  func() time.Time

	stockStale chan struct{} // an order changed the stock: read it again soon
	ctx        context.Context
	cancel     context.CancelFunc
	watching   sync.WaitGroup
}

// New returns the storefront. Start has it follow the stock and counters
// while a page is open; Close stops it and ends every page's stream.
func New(cfg Config, shop Shop, log *slog.Logger) (*Service, error) {
	switch {
	case shop.Invoker == nil || shop.Orders == "" || shop.Inventory == "":
		return nil, errors.New("storefront: an invoker and the app-ids of the order and inventory functions are required")
	case cfg.RefreshEvery <= 0:
		return nil, fmt.Errorf("STOREFRONT_REFRESH_EVERY %s: want a positive duration, e.g. 5s", cfg.RefreshEvery)
	case cfg.History < 1:
		return nil, fmt.Errorf("STOREFRONT_HISTORY %d: want at least 1, e.g. 500", cfg.History)
	case cfg.Port < 0 || cfg.Port > 65535:
		return nil, fmt.Errorf("STOREFRONT_PORT %d: want a TCP port, or 0 for any free one", cfg.Port)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{cfg: cfg, shop: shop, log: log, feed: newFeed(cfg.History), now: time.Now,
		stockStale: make(chan struct{}, 1), ctx: ctx, cancel: cancel}, nil
}

// Topics are the storefront's subscriptions. One without a topic is not
// subscribed to, and the page goes without what it brings.
type Topics struct {
	Orders      runtime.Subscription // the order events: an order is stored
	Emails      runtime.Subscription // the notification's "emails sent" events
	DeadLetters runtime.Subscription // the orders topic's dead letters
}

// Register wires the storefront's topics into app.
func Register(app *runtime.App, s *Service, t Topics) {
	if t.Orders.Topic != "" {
		runtime.Topic(app, t.Orders, s.OrderStored)
	}
	if t.Emails.Topic != "" {
		runtime.Topic(app, t.Emails, s.EmailsSent)
	}
	if t.DeadLetters.Topic != "" {
		runtime.Topic(app, t.DeadLetters, s.DeadLettered)
	}
}

// Step is one step of an order as the feed shows it.
type Step struct {
	OrderID   string    `json:"orderId"`
	Step      string    `json:"step"` // placed, stored or emailed
	ProductID string    `json:"productId,omitempty"`
	Quantity  int       `json:"quantity,omitempty"`
	To        string    `json:"to,omitempty"`      // emailed
	Subject   string    `json:"subject,omitempty"` // emailed
	At        time.Time `json:"at"`
}

// The steps of an order.
const (
	StepPlaced  = "placed"  // the storefront's order form placed it
	StepStored  = "stored"  // the order function stored it (its order event)
	StepEmailed = "emailed" // the notification sent its confirmation
)

// DeadLetter is an event the orders topic dead-lettered, as the feed shows
// it. Data is the event's data as text, cut to 300 bytes.
type DeadLetter struct {
	EventID string    `json:"eventId"`
	Source  string    `json:"source"`
	Type    string    `json:"type"`
	Data    string    `json:"data"`
	At      time.Time `json:"at"`
}

// OrderStored shows an order the order function stored (its order event,
// at the time the event was published). An event the order function did
// not sign is not shown.
func (s *Service) OrderStored(_ context.Context, ev runtime.Event[orderevent.Event]) error {
	o := ev.Data
	if s.shop.OrderKey != nil && !o.SignedBy(s.shop.OrderKey) {
		s.log.Debug("order event not signed by the order function: not shown", "event", ev.ID, "source", ev.Source)
		return nil
	}
	at := s.now().UTC()
	if t := ev.Time; !t.IsZero() && t.Before(at) { // when the order function published it
		at = t.UTC()
	}
	s.feed.add(eventOrder, Step{OrderID: o.OrderID, Step: StepStored, ProductID: o.ProductID, Quantity: o.Quantity, At: at})
	s.stockChanged()
	return nil
}

// EmailsSent shows the confirmations the notification sent. An event it
// did not sign is not shown.
func (s *Service) EmailsSent(_ context.Context, ev runtime.Event[notification.EmailsSent]) error {
	if s.shop.EmailKey != nil && !ev.Data.SignedBy(s.shop.EmailKey) {
		s.log.Debug("emails sent event not signed by the notification: not shown", "event", ev.ID, "source", ev.Source)
		return nil
	}
	for _, m := range ev.Data.Emails {
		if !runtime.SafeID(m.OrderID) {
			continue
		}
		s.feed.add(eventOrder, Step{OrderID: m.OrderID, Step: StepEmailed, To: m.To, Subject: m.Subject, At: m.SentAt.UTC()})
	}
	return nil
}

// maxDeadLetterData is how much of a dead letter's data the page shows.
const maxDeadLetterData = 300

// DeadLettered shows an event of the dead-letter topic, whatever it holds.
func (s *Service) DeadLettered(_ context.Context, ev runtime.Event[[]byte]) error {
	data := readable(ev.Data)
	if len(data) > maxDeadLetterData {
		data = data[:maxDeadLetterData]
	}
	s.feed.add(eventDeadLetter, DeadLetter{EventID: ev.ID, Source: ev.Source, Type: ev.Type, Data: strings.ToValidUTF8(string(data), "\uFFFD"), At: s.now().UTC()})
	return nil
}

// readable is JSON data as a person reads it: compact, with <, > and &
// as they are rather than the \u003c escapes a publisher may have written
// (the page shows it as text). Anything else stays as it is.
func readable(data []byte) []byte {
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if dec.Decode(&v) != nil || dec.More() {
		return data
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) != nil {
		return data
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// Product is one product with its stock, as the inventory lists it.
type Product struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Stock int    `json:"stock"`
}

// Stock is what the page shows of the inventory: the products, or why
// they could not be read.
type Stock struct {
	Products []Product `json:"products"`
	Error    string    `json:"error,omitempty"`
}

// readStock asks the inventory function for every product's stock.
func (s *Service) readStock(ctx context.Context) Stock {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	body, err := s.shop.Invoker.Invoke(ctx, s.shop.Inventory, "GET", "inventory", nil)
	if err != nil {
		s.log.Warn("reading the stock failed", "app", s.shop.Inventory, "error", err.Error())
		return Stock{Products: []Product{}, Error: "the stock cannot be read right now"}
	}
	var listed map[string]struct {
		Name  string `json:"name"`
		Stock int    `json:"stock"`
	}
	if err := json.Unmarshal(body, &listed); err != nil {
		s.log.Warn("the inventory answered something else than its stock", "app", s.shop.Inventory, "error", err.Error())
		return Stock{Products: []Product{}, Error: "the stock cannot be read right now"}
	}
	out := Stock{Products: make([]Product, 0, len(listed))}
	for id, p := range listed {
		out.Products = append(out.Products, Product{ID: id, Name: p.Name, Stock: p.Stock})
	}
	slices.SortFunc(out.Products, func(a, b Product) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// AppCounters are one app's function counters, or why they could not be
// read.
type AppCounters struct {
	AppID     string                    `json:"appId"`
	Functions []metrics.FunctionCounter `json:"functions"`
	Error     string                    `json:"error,omitempty"`
}

// readCounters asks every app for its function counters, at once.
func (s *Service) readCounters(ctx context.Context) []AppCounters {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	out := make([]AppCounters, len(s.shop.Apps))
	var wg sync.WaitGroup
	for i, app := range s.shop.Apps {
		wg.Go(func() {
			out[i] = AppCounters{AppID: app, Functions: []metrics.FunctionCounter{}}
			body, err := s.shop.Invoker.Invoke(ctx, app, "GET", metrics.CountersMethod, nil)
			var c metrics.Counters
			if err == nil {
				err = json.Unmarshal(body, &c)
			}
			if err != nil {
				s.log.Debug("reading an app's counters failed", "app", app, "error", err.Error())
				out[i].Error = "no counters: the app is down, or serves no metrics (METRICS_PORT)"
				return
			}
			out[i].Functions = c.Functions
		})
	}
	wg.Wait()
	return out
}

// stockChanged asks for the stock to be read again soon.
func (s *Service) stockChanged() {
	select {
	case s.stockStale <- struct{}{}:
	default:
	}
}

// stockGap is the least time between two reads of the stock that orders
// asked for: a busy shop costs the inventory one read a second per
// storefront, not one per order.
const stockGap = time.Second

// Start has the storefront read the stock and the counters while a page
// is open: at once when the first page opens, every RefreshEvery, and the
// stock soon after an order. It returns at once.
func (s *Service) Start() {
	s.watching.Go(s.watch)
}

func (s *Service) watch() {
	every := time.NewTicker(s.cfg.RefreshEvery)
	defer every.Stop()
	var lastStock time.Time
	stock := func() {
		s.feed.setStock(s.readStock(s.ctx))
		lastStock = time.Now()
	}
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.feed.opened():
			stock()
			s.feed.setCounters(s.readCounters(s.ctx))
		case <-every.C:
			if s.feed.watched() {
				stock()
				s.feed.setCounters(s.readCounters(s.ctx))
			}
		case <-s.stockStale:
			if !s.feed.watched() {
				continue
			}
			if wait := stockGap - time.Since(lastStock); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-s.ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			select { // the orders that came while it waited: this read is theirs too
			case <-s.stockStale:
			default:
			}
			stock()
		}
	}
}

// Close stops following the stock and counters and ends every page's
// stream (the pages reconnect to another replica, or once this one is
// back).
func (s *Service) Close() {
	s.cancel()
	s.feed.close()
	s.watching.Wait()
}
