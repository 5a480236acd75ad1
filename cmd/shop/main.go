// Command shop serves the shop's functions (order, inventory, notification)
// to a Dapr sidecar, any subset per process (FUNCTIONS), and runs a dapr.yaml
// multi-app file with the pinned daprd (shop run -f deploy/dapr.yaml).
//
//	shop [serve]                 serve the functions named by FUNCTIONS
//	shop run -f deploy/dapr.yaml start every app of the file with its daprd
//	shop env                     list the environment variables
//	shop env markdown            the same as the Markdown table of docs/configuration.md
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/bindings/dapr"
	"github.com/daprfn/shop/bindings/email"
	"github.com/daprfn/shop/bindings/orderstore"
	"github.com/daprfn/shop/functions/inventory"
	"github.com/daprfn/shop/functions/notification"
	"github.com/daprfn/shop/functions/order"
	"github.com/daprfn/shop/functions/orderevent"
	"github.com/daprfn/shop/internal/procdefaults"
	"github.com/daprfn/shop/runtime"
	daprrt "github.com/daprfn/shop/runtime/dapr"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd := arg(1); cmd {
	case "", "serve":
		err = serve(ctx)
	case "run":
		err = runFile(ctx, os.Args[2:])
	case "env":
		switch mode := arg(2); mode {
		case "":
			err = envconfig.Usage("", &Config{})
		case "markdown", "-markdown":
			_, err = fmt.Print(envMarkdown())
		default:
			err = fmt.Errorf("env %s: want no argument (a plain list) or markdown (the table of docs/configuration.md)", mode)
		}
	default:
		err = fmt.Errorf("unknown command %q: want serve, run or env", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "shop:", err)
		os.Exit(1)
	}
}

func arg(i int) string {
	if len(os.Args) > i {
		return os.Args[i]
	}
	return ""
}

func serve(ctx context.Context) error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	gogc, gomaxprocs := procdefaults.Apply()
	log, err := newLogger(cfg)
	if err != nil {
		return err
	}
	log = log.With("app", cfg.AppID)
	if cfg.PprofAddr != "" {
		go servePprof(cfg.PprofAddr, log)
	}
	sidecar, err := dapr.New(dapr.Config{
		Address:       net.JoinHostPort(cfg.DaprHost, strconv.Itoa(cfg.DaprGRPCPort)),
		APIToken:      cfg.DaprAPIToken,
		StateStore:    cfg.StateStore,
		InternalToken: cfg.InternalToken,
	})
	if err != nil {
		return err
	}
	defer sidecar.Close()

	app := runtime.New(runtime.Options{Logger: log, Middleware: runtime.Defaults(log, cfg.MaxBodyBytes), InternalToken: cfg.InternalToken})
	if cfg.InternalToken == "" {
		log.Warn("INTERNAL_TOKEN is not set: internal routes refuse every call and order events go unsigned")
	}
	wired, err := register(app, cfg, sidecarPorts(sidecar, cfg.NotificationStore), log)
	if err != nil {
		return err
	}
	defer wired.close()
	srv, err := daprrt.NewServer(app, daprrt.ServerConfig{
		Protocol:        daprrt.Protocol(cfg.AppProtocol),
		Address:         net.JoinHostPort(cfg.ListenAddress, strconv.Itoa(cfg.AppPort)),
		HealthAddress:   healthAddress(cfg),
		AppToken:        cfg.AppAPIToken,
		MaxBody:         int64(cfg.MaxBodyBytes),
		ShutdownTimeout: cfg.ShutdownTimeout,
		SidecarTimeout:  cfg.SidecarTimeout,
		ResourcesHint:   cfg.ResourcesPath,
	}, sidecar)
	if err != nil {
		return err
	}
	for _, f := range wired.onReady {
		srv.OnReady(f)
	}
	log.Info("serving functions", "functions", cfg.Functions, "protocol", cfg.AppProtocol, "port", cfg.AppPort,
		"gomaxprocs", gomaxprocs, "gogc", gcSetting(gogc))
	err = srv.Run(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("stopped")
	return nil
}

func healthAddress(cfg Config) string {
	if cfg.HealthPort == 0 {
		return ""
	}
	return net.JoinHostPort(cfg.ListenAddress, strconv.Itoa(cfg.HealthPort))
}

// wiring is what register leaves for serve: start-up checks and shutdown work.
type wiring struct {
	onReady []func(context.Context) error
	closers []func()
}

func (w wiring) close() {
	for i := len(w.closers) - 1; i >= 0; i-- {
		w.closers[i]()
	}
}

// ports are what the functions call out through; the real sidecar provides
// all of them, the fake sidecar of runtimetest each from its own part.
type ports struct {
	state       bindings.StateStore // the order and inventory functions'
	notifyState bindings.StateStore // the notification function's
	pub         bindings.Publisher
	out         bindings.OutputBinding
	invoke      bindings.Invoker
	comps       bindings.Components
}

func sidecarPorts(sc *dapr.Client, notificationStore string) ports {
	return ports{state: sc, notifyState: sc.WithStateStore(notificationStore), pub: sc, out: sc, invoke: sc, comps: sc}
}

// register wires the selected functions to their triggers: every trigger of
// the deployed app is visible here.
func register(app *runtime.App, cfg Config, p ports, log *slog.Logger) (wiring, error) {
	var w wiring
	state := runtime.Component{Kind: "state", Name: cfg.StateStore}

	var (
		inv    *inventory.Service
		orders *order.Service
	)
	if cfg.serves("inventory") {
		catalog := inventory.SeedCatalog
		if cfg.Catalog != "" {
			c, err := inventory.ParseCatalog(cfg.Catalog)
			if err != nil {
				return w, fmt.Errorf("CATALOG: %w", err)
			}
			catalog = c
		}
		var lookup inventory.OrderLookup = inventory.InvokeOrders{Invoker: p.invoke, AppID: cfg.OrderAppID}
		if cfg.serves("order") { // same process: ask the order function, set below
			lookup = inventory.OrderLookupFunc(func(ctx context.Context, id string) (inventory.StoredOrder, error) {
				o, found, err := orders.Find(ctx, id)
				return inventory.StoredOrder{Found: found, ProductID: o.ProductID, Quantity: o.Quantity}, err
			})
		}
		var err error
		inv, err = inventory.New(p.state, inventory.Config{Catalog: catalog, RestockLevel: cfg.RestockLevel, Orders: lookup, HoldTTL: cfg.HoldTTL})
		if err != nil {
			return w, err
		}
		runtime.Invoke(app, "POST /check", inv.Check) // the seed's: its order-service sends no credential
		runtime.Invoke(app, "POST /reserve", inv.Reserve, runtime.Internal)
		runtime.Invoke(app, "POST /confirm", inv.Confirm, runtime.Internal)
		runtime.Invoke(app, "POST /lease", inv.Lease, runtime.Internal)
		runtime.Invoke(app, "GET /inventory", inv.List)
		runtime.Binding(app, cfg.RestockBinding, inv.Restock)
		runtime.Binding(app, cfg.HoldSweepBinding, inv.SweepHolds)
		app.Requires(state)
	}

	if cfg.serves("order") {
		// In the same process the inventory's group commit already shares
		// one write among the orders in flight, and leases measured no gain.
		var stock order.Stock = localStock{inv, log}
		if inv == nil {
			remote := order.NewInvokeStock(p.invoke, cfg.InventoryAppID, log)
			w.closers = append(w.closers, remote.Close)
			stock = remote
			if cfg.StockLeaseUnits > 0 {
				leased := order.NewLeaseStock(order.InvokeLeaser{Invoker: p.invoke, AppID: cfg.InventoryAppID}, cfg.StockLeaseUnits, remote, log)
				w.closers = append(w.closers, leased.Close) // closed before remote
				stock = leased
			}
		}
		archive, err := orderstore.New(p.out, cfg.OrderStoreBinding, bindings.TypeOf(p.comps, "bindings", cfg.OrderStoreBinding), cfg.OrderTable)
		if err != nil {
			return w, err
		}
		ob, err := order.NewOutbox(p.state, p.pub, archive, order.OutboxConfig{Pubsub: cfg.Pubsub, Topic: cfg.OrdersTopic, Source: cfg.AppID, RetryAfter: cfg.OutboxRetryAfter, StaleAfter: cfg.OutboxStaleAfter, DeliveryWait: cfg.OutboxDeliveryWait, SigningKey: orderevent.Key(cfg.InternalToken)}, log)
		if err != nil {
			return w, err
		}
		w.closers = append(w.closers, ob.Close)
		orders, err = order.New(p.state, stock, ob, cfg.OrderTimeout, log)
		if err != nil {
			return w, err
		}
		runtime.Invoke(app, "POST /orders", orders.Create)
		runtime.Invoke(app, "GET /orders/{id}", orders.Get) // the seed's "check order status"; the hold sweep reads it too
		runtime.Binding(app, cfg.SweepBinding, ob.Sweep)
		app.Requires(state, runtime.Component{Kind: "pubsub", Name: cfg.Pubsub}, runtime.Component{Kind: "bindings", Name: cfg.OrderStoreBinding})
		w.onReady = append(w.onReady, archive.EnsureSchema)
	}

	if cfg.serves("notification") {
		mailer := email.NewSender(p.out, cfg.EmailBinding, bindings.TypeOf(p.comps, "bindings", cfg.EmailBinding))
		notify, err := notification.New(p.notifyState, mailer, cfg.EmailFrom, log)
		if err != nil {
			return w, err
		}
		sub := runtime.Subscription{Pubsub: cfg.Pubsub, Topic: cfg.OrdersTopic, Route: cfg.NotificationRoute, DeadLetterTopic: cfg.DeadLetterTopic}
		if cfg.NotificationBulk > 0 {
			sub.Bulk = &runtime.BulkDelivery{MaxMessages: cfg.NotificationBulk, MaxAwait: cfg.NotificationBulkAwait}
		}
		var lookup orderevent.Lookup = orderevent.InvokeLookup{Invoker: p.invoke, AppID: cfg.OrderAppID}
		if cfg.serves("order") { // same process: ask the order function, set above
			lookup = orderevent.LookupFunc(func(ctx context.Context, id string) (orderevent.Stored, error) {
				o, found, err := orders.Find(ctx, id)
				return orderevent.Stored{Found: found, ProductID: o.ProductID, Quantity: o.Quantity, CustomerEmail: o.CustomerEmail}, err
			})
		}
		notify.CheckEvents(orderevent.Key(cfg.InternalToken), lookup)
		runtime.Topic(app, sub, notify.Send)
		runtime.Topic(app, runtime.Subscription{Pubsub: cfg.Pubsub, Topic: cfg.DeadLetterTopic, Route: "/deadletter/" + cfg.OrdersTopic}, notify.DeadLetter)
		runtime.Binding(app, cfg.EmailSweepBinding, notify.SendUnsent)
		app.Requires(runtime.Component{Kind: "state", Name: cfg.NotificationStore}, runtime.Component{Kind: "bindings", Name: cfg.EmailBinding})
		w.onReady = append(w.onReady, mailer.Check)
	}
	if err := app.Err(); err != nil {
		return w, fmt.Errorf("%w (NOTIFICATION_ROUTE and the function routes must differ)", err)
	}
	return w, nil
}

// localStock is order.Stock served by the inventory function in the same
// process (the embedded mode).
type localStock struct {
	inv *inventory.Service
	log *slog.Logger
}

func (l localStock) Take(ctx context.Context, orderID, productID string, qty int) (order.Availability, error) {
	r, err := l.inv.Check(ctx, inventory.CheckRequest{OrderID: orderID, ProductID: productID, Quantity: qty})
	return order.Availability{Available: r.Available, ProductName: r.ProductName, Remaining: r.RemainingStock}, err
}

// Confirm joins the product's next write: the inventory writes the changes
// that arrive while a write of the product is in flight together, so a busy
// shop's confirmations cost no write of their own.
func (l localStock) Confirm(t order.Taken) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req := inventory.ConfirmRequest{Orders: []inventory.Confirmation{{OrderID: t.OrderID, ProductID: t.ProductID}}}
		if _, err := l.inv.Confirm(ctx, req); err != nil {
			l.log.Warn("confirming a stock hold failed; the inventory's hold sweep will settle it", "order", t.OrderID, "error", err.Error())
		}
	}()
}

// gcSetting names the GC target procdefaults.Apply left in effect.
func gcSetting(gogc int) string {
	if gogc < 0 {
		return "GOGC=" + os.Getenv("GOGC")
	}
	return strconv.Itoa(gogc)
}

// servePprof serves the runtime profiles of net/http/pprof, for measuring
// where an app's CPU goes under load (PPROF_ADDR; keep it on loopback).
func servePprof(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	log.Info("pprof listening", "address", addr)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		log.Error("pprof stopped", "error", err.Error())
	}
}
