package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/daprfn/shop/functions/storefront"
	"github.com/daprfn/shop/internal/launch"
)

// defaultDaprd is where `make daprd` caches the pinned daprd.
const defaultDaprd = "bin/daprd-1.18.2/daprd"

// runFile runs `shop run -f FILE`: every app of a dapr multi-app run file
// with its own pinned daprd.
func runFile(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	file := fs.String("f", "deploy/dapr.yaml", "dapr multi-app run file")
	daprd := fs.String("daprd", envOr("DAPRD", defaultDaprd), "daprd binary (env DAPRD)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := launch.Load(*file)
	if err != nil {
		return err
	}
	bin, _ := filepath.Abs(*daprd)
	return launch.Run(ctx, f, launch.Options{Daprd: bin, Ready: banner, DaprdGOGC: os.Getenv("DAPRD_GOGC")})
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
