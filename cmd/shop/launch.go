package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

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
func banner(f *launch.File) {
	var b strings.Builder
	b.WriteString("\nThe shop is up.\n")
	var orderApp, inventoryApp *launch.App
	for i, a := range f.Apps {
		fns := a.Env["FUNCTIONS"]
		if fns == "" {
			fns = strings.Join(functionNames(), ",") // empty FUNCTIONS serves the whole function table
		}
		fmt.Fprintf(&b, "  %-22s functions %-30s app :%d  sidecar http :%d grpc :%d\n", a.AppID, fns, a.AppPort, a.DaprHTTPPort, a.DaprGRPCPort)
		if a.AppMetricsPort != 0 {
			fmt.Fprintf(&b, "  %-22s metrics http://localhost:%d/metrics\n", "", a.AppMetricsPort)
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
	b.WriteString("\nCtrl-C stops everything.\n\n")
	fmt.Print(b.String())
}
