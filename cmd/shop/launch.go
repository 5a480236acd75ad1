package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/daprfn/shop/functions/storefront"
	"github.com/daprfn/shop/internal/launch"
)

// defaultDaprd and defaultSentry are where `make daprd` and `make sentry`
// cache the pinned daprd and sentry.
const (
	defaultDaprd  = "bin/daprd-1.18.2/daprd"
	defaultSentry = "bin/sentry-1.18.2/sentry"
)

// runFile runs `shop run -f FILE`: every app of a dapr multi-app run file
// with its own pinned daprd.
func runFile(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	file := fs.String("f", "deploy/dapr.yaml", "dapr multi-app run file")
	daprd := fs.String("daprd", envOr("DAPRD", defaultDaprd), "daprd binary (env DAPRD)")
	sentry := fs.String("sentry", envOr("SENTRY", defaultSentry), "sentry binary, for run files with a hosts section (env SENTRY)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := launch.Load(*file)
	if err != nil {
		return err
	}
	bin, _ := filepath.Abs(*daprd)
	sentryBin, _ := filepath.Abs(*sentry)
	return launch.Run(ctx, f, launch.Options{Daprd: bin, Sentry: sentryBin, Ready: banner, HostsReady: hostsBanner,
		DaprdGOGC: os.Getenv("DAPRD_GOGC"), Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// banner prints the endpoints and the seed's curl lines once all is healthy.
func banner(f *launch.File) { fmt.Print(bannerText(f)) }

// bannerText is what banner prints.
func bannerText(f *launch.File) string {
	var b strings.Builder
	b.WriteString("\nThe shop is up.\n")
	var orderApp, inventoryApp *launch.App
	var pages []string
	for i, a := range f.Apps {
		fns := a.Env["FUNCTIONS"]
		if fns == "" {
			fns = strings.Join(functionNames(), ",") // empty FUNCTIONS serves the whole function table
		}
		fmt.Fprintf(&b, "  %-22s functions %-30s app :%d  sidecar http :%d grpc :%d\n", a.AppID, fns, a.AppPort, a.DaprHTTPPort, a.DaprGRPCPort)
		if a.AppMetricsPort != 0 {
			fmt.Fprintf(&b, "  %-22s metrics http://localhost:%d/metrics\n", "", a.AppMetricsPort)
		}
		if slices.Contains(strings.Split(fns, ","), "storefront") {
			page := "http://localhost:" + storefrontPort(f, a) + "/"
			pages = append(pages, page)
			fmt.Fprintf(&b, "  %-22s storefront %s\n", "", page)
		}
		for name, dir := range f.LocalStorage(a) {
			fmt.Fprintf(&b, "  %-22s %s files land in %s\n", "", name, dir)
		}
		if orderApp == nil && slices.Contains(strings.Split(fns, ","), "order") {
			orderApp = &f.Apps[i]
		}
		if inventoryApp == nil && slices.Contains(strings.Split(fns, ","), "inventory") {
			inventoryApp = &f.Apps[i]
		}
	}
	if a := orderApp; a != nil {
		fmt.Fprintf(&b, "\nCreate an order (the seed's curl line):\n"+
			"  curl -X POST http://localhost:%d/v1.0/invoke/%s/method/orders \\\n"+
			"    -H \"Content-Type: application/json\" \\\n"+
			"    -d '{\"productId\": \"product-1\", \"quantity\": 2, \"customerEmail\": \"customer@example.com\"}'\n"+
			"Check order status:\n  curl http://localhost:%d/v1.0/invoke/%s/method/orders/[ORDER_ID]\n",
			a.DaprHTTPPort, a.AppID, a.DaprHTTPPort, a.AppID)
	}
	if a := inventoryApp; a != nil {
		fmt.Fprintf(&b, "Stock:\n  curl http://localhost:%d/v1.0/invoke/%s/method/inventory\n", a.DaprHTTPPort, a.AppID)
	}
	for _, page := range pages {
		fmt.Fprintf(&b, "Watch it work: open %s in a browser.\n", page)
	}
	b.WriteString("\nCtrl-C stops everything.\n\n")
	return b.String()
}

// storefrontPort is the port of the storefront's page in app a:
// STOREFRONT_PORT of its env or the file's common env, else the default.
func storefrontPort(f *launch.File, a launch.App) string {
	for _, env := range []map[string]string{a.Env, f.Common.Env} {
		if p := env["STOREFRONT_PORT"]; p != "" {
			return p
		}
	}
	field, _ := reflect.TypeFor[storefront.Config]().FieldByName("Port")
	return field.Tag.Get("default")
}

// hostsBanner prints the hosts, what runs on them and the seed's curl lines
// from the first app host once every sidecar on every host is healthy.
func hostsBanner(c *launch.Cluster) {
	var b strings.Builder
	f := c.File()
	fmt.Fprintf(&b, "\nThe shop is up on %d app hosts (run %s), with mTLS from sentry and access-control policies.\n", len(c.AppHosts()), c.Run())
	fmt.Fprintf(&b, "  %-8s %-15s %-24s %s\n", "host", "address", "namespace", "runs")
	fmt.Fprintf(&b, "  %-8s %-15s %-24s %s\n", c.Infra().Name, c.Infra().Addr, c.Infra().Namespace, strings.Join(f.Hosts.Infrastructure, ", "))
	fmt.Fprintf(&b, "  %-8s %-15s %-24s %s\n", c.Control().Name, c.Control().Addr, c.Control().Namespace, "sentry")
	var ids []string
	for _, a := range f.Apps {
		ids = append(ids, a.AppID)
	}
	for _, h := range c.AppHosts() {
		fmt.Fprintf(&b, "  %-8s %-15s %-24s %s, each with its daprd\n", h.Name, h.Addr, h.Namespace, strings.Join(ids, ", "))
	}
	var order, inventory *launch.App
	for i, a := range f.Apps {
		fns := strings.Split(a.Env["FUNCTIONS"], ",")
		if order == nil && slices.Contains(fns, "order") {
			order = &f.Apps[i]
		}
		if inventory == nil && slices.Contains(fns, "inventory") {
			inventory = &f.Apps[i]
		}
	}
	first := c.AppHosts()[0]
	on := "ip netns exec " + first.Namespace + " "
	if order != nil {
		fmt.Fprintf(&b, "\nCreate an order from the first app host (the seed's curl line):\n"+
			"  %scurl -X POST http://localhost:%d/v1.0/invoke/%s/method/orders \\\n"+
			"    -H \"Content-Type: application/json\" \\\n"+
			"    -d '{\"productId\": \"product-1\", \"quantity\": 2, \"customerEmail\": \"customer@example.com\"}'\n"+
			"Check order status:\n  %scurl http://localhost:%d/v1.0/invoke/%s/method/orders/[ORDER_ID]\n",
			on, order.DaprHTTPPort, order.AppID, on, order.DaprHTTPPort, order.AppID)
	}
	if inventory != nil {
		fmt.Fprintf(&b, "Stock:\n  %scurl http://localhost:%d/v1.0/invoke/%s/method/inventory\n", on, inventory.DaprHTTPPort, inventory.AppID)
	}
	if len(f.Hosts.Forward) > 0 {
		var ports []string
		for _, p := range f.Hosts.Forward {
			ports = append(ports, fmt.Sprintf(":%d", p))
		}
		fmt.Fprintf(&b, "Ports %s of this machine's localhost lead to the first app host's, so the lines work without ip netns exec too.\n", strings.Join(ports, ", "))
	}
	for _, a := range f.Apps {
		if slices.Contains(strings.Split(a.Env["FUNCTIONS"], ","), "storefront") {
			port := storefrontPort(f, a)
			fmt.Fprintf(&b, "Watch it work: the storefront's page is http://localhost:%s on each app host", port)
			if p, _ := strconv.Atoi(port); slices.Contains(f.Hosts.Forward, p) {
				fmt.Fprintf(&b, "; open http://localhost:%s in a browser here", port)
			}
			b.WriteString(".\n")
		}
	}
	b.WriteString("\nCtrl-C stops everything and removes the hosts.\n\n")
	fmt.Print(b.String())
}
