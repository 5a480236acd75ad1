// Command shop serves the shop's functions (order, inventory, notification)
// to a Dapr sidecar, any subset per process (FUNCTIONS), and runs a dapr.yaml
// multi-app file with the pinned daprd (shop run -f deploy/dapr.yaml).
//
//	shop [serve]                 serve the functions named by FUNCTIONS
//	shop run -f deploy/dapr.yaml start every app of the file with its daprd
//	shop new NAME --invoke "POST /path" --topic pubsub/topic --cron "@every 1m"
//	                             scaffold a new function into the repository
//	shop env                     list the environment variables
//	shop env markdown            the same as the Markdown table of docs/configuration.md
package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	goruntime "runtime"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/daprfn/shop/bindings/dapr"
	"github.com/daprfn/shop/functions/inventory"
	"github.com/daprfn/shop/functions/stock"
	"github.com/daprfn/shop/runtime/host"
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
	case "new":
		err = newFunction(os.Args[2:], os.Stdout)
	case "env":
		switch mode := arg(2); mode {
		case "":
			err = envUsage()
		case "markdown", "-markdown":
			_, err = fmt.Print(envMarkdown())
		default:
			err = fmt.Errorf("env %s: want no argument (a plain list) or markdown (the table of docs/configuration.md)", mode)
		}
	default:
		err = fmt.Errorf("unknown command %q: want serve, run, new or env", cmd)
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
	// The shop's own peers are the deployment's, whatever INTERNAL_APP_IDS says.
	env := cfg.Env
	env.InternalAppIDs = append(slices.Clone(env.InternalAppIDs), cfg.InventoryAppID, cfg.OrderAppID)
	return host.Run(ctx, env, func(h *host.Host) error {
		w, err := register(h.App, cfg, sidecarPorts(h, cfg), h.Log)
		h.OnClose(w.close)
		if err != nil {
			return err
		}
		for _, f := range w.onReady {
			h.OnReady(f)
		}
		h.Log.Info("serving functions", "functions", cfg.Functions, "protocol", cfg.AppProtocol, "port", cfg.AppPort,
			"gomaxprocs", goruntime.GOMAXPROCS(0), "gogc", cmp.Or(os.Getenv("GOGC"), "100"))
		return nil
	})
}

// sidecarPorts are the ports the real sidecar serves.
func sidecarPorts(h *host.Host, cfg Config) ports {
	sc := h.Sidecar.WithStateStore(cfg.StateStore)
	p := ports{state: sc, notifyState: h.Sidecar.WithStateStore(cfg.NotificationStore), pub: sc, out: sc, invoke: sc, comps: sc}
	env := h.Env
	if whole, err := dapr.NewHTTPInvoker(dapr.HTTPConfig{Address: net.JoinHostPort(env.DaprHost, strconv.Itoa(env.DaprHTTPPort)),
		APIToken: env.DaprAPIToken, InternalToken: env.InternalToken, InternalAppIDs: env.InternalAppIDs}); err == nil {
		p.invokeWhole = whole
	}
	return p
}

// localStock is stock.Stock served by the inventory function in the same
// process (the embedded mode).
type localStock struct {
	inv *inventory.Service
	log *slog.Logger
}

func (l localStock) Take(ctx context.Context, orderID, productID string, qty int) (stock.Availability, error) {
	r, err := l.inv.Check(ctx, stock.CheckRequest{OrderID: orderID, ProductID: productID, Quantity: qty})
	return stock.Availability{Available: r.Available, ProductName: r.ProductName, Remaining: r.RemainingStock}, err
}

// Confirm joins the product's next write: the inventory writes the changes
// that arrive while a write of the product is in flight together, so a busy
// shop's confirmations cost no write of their own.
func (l localStock) Confirm(t stock.Taken) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req := stock.ConfirmRequest{Orders: []stock.Confirmation{stock.Confirmation(t)}}
		if _, err := l.inv.Confirm(ctx, req); err != nil {
			l.log.Warn("confirming a stock hold failed; the inventory's hold sweep will settle it", "order", t.OrderID, "error", err.Error())
		}
	}()
}
