package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/bindings/email"
	"github.com/daprfn/shop/bindings/orderstore"
	"github.com/daprfn/shop/functions/inventory"
	"github.com/daprfn/shop/functions/lease"
	"github.com/daprfn/shop/functions/notification"
	"github.com/daprfn/shop/functions/order"
	"github.com/daprfn/shop/functions/orderevent"
	"github.com/daprfn/shop/functions/stock"
	"github.com/daprfn/shop/functions/storefront"
	"github.com/daprfn/shop/runtime"
	"github.com/daprfn/shop/runtime/outbox"
)

// function is one entry of the function table: a function bin/shop can
// serve, by the name FUNCTIONS uses.
type function struct {
	name string
	// config, when set, is the zero value of the function's own
	// configuration struct, read with envconfig under the prefix of its
	// upper-cased name (SHIPPING_...); `shop env` lists its variables.
	config any
	// register wires the function's triggers into s.app. Functions register
	// in table order, so one may use another served by the same process.
	register func(s *shop) error
}

// functions is the function table. `shop new NAME` adds one line at its end.
var functions = []function{
	{name: "inventory", register: registerInventory},
	{name: "order", register: registerOrder},
	{name: "notification", register: registerNotification},
	{name: "storefront", config: storefront.Config{}, register: registerStorefront},
}

// functionNames lists the table's names, in order.
func functionNames() []string {
	names := make([]string, len(functions))
	for i, f := range functions {
		names[i] = f.name
	}
	return names
}

// envPrefix is the prefix of the function's own variables.
func (f function) envPrefix() string { return strings.ToUpper(f.name) }

// shop is what the functions of one process share while they register.
type shop struct {
	cfg Config
	app *runtime.App
	p   ports
	log *slog.Logger
	w   *wiring

	// Set by the functions that registered before, when this process serves them.
	inv    *inventory.Service
	orders *order.Service
}

// ports are what the functions call out through; the real sidecar provides
// all of them, the fake sidecar of runtimetest each from its own part.
type ports struct {
	state       bindings.StateStore // the order and inventory functions'
	notifyState bindings.StateStore // the notification function's
	pub         bindings.Publisher
	out         bindings.OutputBinding
	invoke      bindings.Invoker
	// invokeWhole is invocation whose error answers arrive whole (the
	// sidecar's HTTP API), for the storefront, which shows them to people;
	// nil: invoke.
	invokeWhole bindings.Invoker
	comps       bindings.Components
}

// wiring is what the registrations leave for serve: start-up checks and
// shutdown work.
type wiring struct {
	onReady []func(context.Context) error
	closers []func()
}

func (w wiring) close() {
	for i := len(w.closers) - 1; i >= 0; i-- {
		w.closers[i]()
	}
}

// register wires the functions cfg.Functions names, in table order.
func register(app *runtime.App, cfg Config, p ports, log *slog.Logger) (wiring, error) {
	s := &shop{cfg: cfg, app: app, p: p, log: log, w: &wiring{}}
	for _, f := range functions {
		if !cfg.serves(f.name) {
			continue
		}
		if err := f.register(s); err != nil {
			return *s.w, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	if err := app.Err(); err != nil {
		return *s.w, fmt.Errorf("%w (NOTIFICATION_ROUTE and the function routes must differ)", err)
	}
	return *s.w, nil
}

// findOrder looks an order up in the order function of this process.
func (s *shop) findOrder(ctx context.Context, id string) (orderevent.Stored, error) {
	o, found, err := s.orders.Find(ctx, id)
	return orderevent.Stored{Found: found, ProductID: o.ProductID, Quantity: o.Quantity, CustomerEmail: o.CustomerEmail}, err
}

// findOrders looks orders up in the order function of this process.
func (s *shop) findOrders(ctx context.Context, ids []string) ([]orderevent.Stored, error) {
	return s.orders.FindAll(ctx, ids)
}

func registerInventory(s *shop) error {
	cfg := s.cfg
	catalog := inventory.SeedCatalog
	if cfg.Catalog != "" {
		c, err := inventory.ParseCatalog(cfg.Catalog)
		if err != nil {
			return fmt.Errorf("CATALOG: %w", err)
		}
		catalog = c
	}
	var lookup orderevent.Lookup = orderevent.InvokeLookup{Invoker: s.p.invoke, AppID: cfg.OrderAppID}
	if cfg.serves("order") { // same process: ask the order function, which registers next
		lookup = orderevent.BulkLookupFunc(s.findOrders)
	}
	inv, err := inventory.New(s.p.state, inventory.Config{Catalog: catalog, RestockLevel: cfg.RestockLevel, Orders: lookup, HoldTTL: cfg.HoldTTL, RestockEvery: cfg.RestockEvery})
	if err != nil {
		return err
	}
	s.inv = inv
	s.w.closers = append(s.w.closers, inv.Close)
	app := s.app
	runtime.Invoke(app, "POST /check", inv.Check) // the seed's: its order-service sends no credential
	runtime.Invoke(app, "POST /reserve", inv.Reserve, runtime.Internal)
	runtime.Invoke(app, "POST /confirm", inv.Confirm, runtime.Internal)
	runtime.Invoke(app, "POST /lease", inv.Lease, runtime.Internal)
	runtime.Invoke(app, "GET /inventory", inv.List)
	runtime.Binding(app, cfg.RestockBinding, inv.Restock)
	runtime.Binding(app, cfg.HoldSweepBinding, inv.SweepHolds)
	app.Requires(runtime.Component{Kind: "state", Name: cfg.StateStore})
	return nil
}

func registerOrder(s *shop) error {
	cfg, p, log := s.cfg, s.p, s.log
	// In the same process the inventory's group commit already shares one
	// write among the orders in flight, and leases measured no gain.
	var supply stock.Stock = localStock{s.inv, log}
	if s.inv == nil {
		remote := stock.NewClient(p.invoke, cfg.InventoryAppID, log)
		s.w.closers = append(s.w.closers, remote.Close)
		supply = remote
		if cfg.StockLeaseUnits > 0 {
			leased, err := lease.NewStock(lease.Config{Leaser: lease.InvokeLeaser{Invoker: p.invoke, AppID: cfg.InventoryAppID},
				Units: cfg.StockLeaseUnits, Next: remote, Log: log})
			if err != nil {
				return err
			}
			s.w.closers = append(s.w.closers, leased.Close) // closed before remote
			supply = leased
		}
	}
	archive, err := orderstore.New(p.out, cfg.OrderStoreBinding, bindings.TypeOf(p.comps, "bindings", cfg.OrderStoreBinding), cfg.OrderTable)
	if err != nil {
		return err
	}
	events, err := outbox.New(outbox.Config{Store: p.state, Publisher: p.pub, Pubsub: cfg.Pubsub, Topic: cfg.OrdersTopic, Source: cfg.AppID,
		After: order.ArchiveAfterPublish(archive), RetryAfter: cfg.OutboxRetryAfter, StaleAfter: cfg.OutboxStaleAfter,
		DeliveryWait: cfg.OutboxDeliveryWait, Log: log})
	if err != nil {
		return err
	}
	s.w.closers = append(s.w.closers, events.Close)
	orders, err := order.New(order.Config{Store: p.state, Stock: supply, Events: events, SigningKey: orderevent.Key(cfg.InternalToken),
		CreateTimeout: cfg.OrderTimeout, Log: log})
	if err != nil {
		return err
	}
	s.orders = orders
	runtime.Invoke(s.app, "POST /orders", orders.Create)
	runtime.Invoke(s.app, "GET /orders/{id}", orders.Get) // the seed's "check order status"; the hold sweep reads it too
	// The hold sweep looks up all the orders of a lease nobody settled at once.
	runtime.Invoke(s.app, "POST /orders/lookup", orders.Lookup, runtime.Internal)
	runtime.Binding(s.app, cfg.SweepBinding, events.Sweep)
	s.app.Requires(runtime.Component{Kind: "state", Name: cfg.StateStore}, runtime.Component{Kind: "pubsub", Name: cfg.Pubsub},
		runtime.Component{Kind: "bindings", Name: cfg.OrderStoreBinding})
	s.w.onReady = append(s.w.onReady, archive.EnsureSchema)
	return nil
}

func registerNotification(s *shop) error {
	cfg, p := s.cfg, s.p
	mailer := email.NewSender(p.out, cfg.EmailBinding, bindings.TypeOf(p.comps, "bindings", cfg.EmailBinding))
	notify, err := notification.New(p.notifyState, mailer, cfg.EmailFrom, s.log)
	if err != nil {
		return err
	}
	sub := runtime.Subscription{Pubsub: cfg.Pubsub, Topic: cfg.OrdersTopic, Route: cfg.NotificationRoute, DeadLetterTopic: cfg.DeadLetterTopic}
	if cfg.NotificationBulk > 0 {
		sub.Bulk = &runtime.BulkDelivery{MaxMessages: cfg.NotificationBulk, MaxAwait: cfg.NotificationBulkAwait}
	}
	var lookup orderevent.Lookup = orderevent.InvokeLookup{Invoker: p.invoke, AppID: cfg.OrderAppID}
	if s.orders != nil { // same process: ask the order function
		lookup = orderevent.LookupFunc(s.findOrder)
	}
	notify.CheckEvents(orderevent.Key(cfg.InternalToken), lookup)
	if cfg.EmailsTopic != "" {
		sent, err := notification.NewSentEvents(notification.SentEventsConfig{Publisher: p.pub, Pubsub: cfg.Pubsub, Topic: cfg.EmailsTopic,
			Source: cfg.AppID, Key: notification.SentSigningKey(cfg.InternalToken), Log: s.log})
		if err != nil {
			return err
		}
		s.w.closers = append(s.w.closers, sent.Close)
		notify.AnnounceTo(sent)
	}
	runtime.Topic(s.app, sub, notify.Send)
	runtime.Topic(s.app, runtime.Subscription{Pubsub: cfg.Pubsub, Topic: cfg.DeadLetterTopic, Route: "/deadletter/" + cfg.OrdersTopic}, notify.DeadLetter)
	runtime.Binding(s.app, cfg.EmailSweepBinding, notify.SendUnsent)
	s.app.Requires(runtime.Component{Kind: "state", Name: cfg.NotificationStore}, runtime.Component{Kind: "bindings", Name: cfg.EmailBinding})
	s.w.onReady = append(s.w.onReady, mailer.Check)
	return nil
}
