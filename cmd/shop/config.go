package main

import (
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/daprfn/shop/functions/lease"
	"github.com/daprfn/shop/functions/order"
)

// Config is every environment variable `shop serve` reads. `shop env` lists
// them; `shop env markdown` prints the table of docs/configuration.md.
type Config struct {
	Functions     []string `envconfig:"FUNCTIONS" default:"order,inventory,notification" desc:"functions this process serves, comma-separated: any of order, inventory, notification"`
	AppID         string   `envconfig:"APP_ID" default:"order-service" desc:"this app's Dapr app-id (the CloudEvent source of order events)"`
	AppPort       int      `envconfig:"APP_PORT" default:"3000" desc:"port daprd calls the app on (--app-port)"`
	AppProtocol   string   `envconfig:"APP_PROTOCOL" default:"http" desc:"app protocol between daprd and app: http or grpc (--app-protocol)"`
	HealthPort    int      `envconfig:"HEALTH_PORT" default:"0" desc:"extra HTTP port for /healthz and /readyz when APP_PROTOCOL=grpc; 0 for none"`
	ListenAddress string   `envconfig:"LISTEN_ADDRESS" default:"127.0.0.1" desc:"address the app port and HEALTH_PORT listen on; 127.0.0.1 keeps the app reachable only from its own host (its sidecar); 0.0.0.0 when something on another address must reach it, e.g. a kubelet's probes of HEALTH_PORT"`

	DaprHost      string `envconfig:"DAPR_HOST" default:"127.0.0.1" desc:"host of the sidecar's APIs"`
	DaprGRPCPort  int    `envconfig:"DAPR_GRPC_PORT" default:"50001" desc:"sidecar gRPC API port the app calls out through"`
	DaprAPIToken  string `envconfig:"DAPR_API_TOKEN" desc:"sent as dapr-api-token on every call to the sidecar when set"`
	AppAPIToken   string `envconfig:"APP_API_TOKEN" desc:"required from the sidecar on every call to the app when set (health probes exempt, and over gRPC the subscription and binding listings, which daprd sends without it)"`
	InternalToken string `envconfig:"INTERNAL_TOKEN" desc:"credential every app of one deployment shares: sent on every service invocation and required by internal routes (JSON 403 without it), and the key order events are signed with; the launcher draws one per run, Kubernetes reads it from the internal-token secret; when empty, internal routes refuse every call and order events go unsigned"`

	PprofAddr       string        `envconfig:"PPROF_ADDR" desc:"address for net/http/pprof profiles (e.g. 127.0.0.1:6060); off when empty"`
	LogLevel        string        `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	LogFormat       string        `envconfig:"LOG_FORMAT" default:"text" desc:"log format (slog): text or json"`
	MaxBodyBytes    int           `envconfig:"MAX_BODY_BYTES" default:"1048576" desc:"largest request or event body accepted; a larger one is answered 413 (DROP for events)"`
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"20s" desc:"how long in-flight work may drain on SIGTERM"`
	SidecarTimeout  time.Duration `envconfig:"SIDECAR_TIMEOUT" default:"60s" desc:"how long to wait for the sidecar at start"`
	ResourcesPath   string        `envconfig:"DAPR_RESOURCES_PATH" default:"components/" desc:"where the sidecar loads components from, named in start-up errors about a missing component (the launcher sets it)"`

	StateStore            string        `envconfig:"STATESTORE" default:"statestore" desc:"state store component of the order and inventory functions"`
	NotificationStore     string        `envconfig:"NOTIFICATION_STATESTORE" default:"notification-state" desc:"state store component of the notification function (sent and dead-letter records); scoped apart so notification cannot read orders or stock"`
	Pubsub                string        `envconfig:"PUBSUB" default:"pubsub" desc:"pub/sub component"`
	OrdersTopic           string        `envconfig:"ORDERS_TOPIC" default:"orders" desc:"topic of order events"`
	DeadLetterTopic       string        `envconfig:"ORDERS_DEADLETTER_TOPIC" default:"orders-deadletter" desc:"dead-letter topic of the notification subscription"`
	NotificationRoute     string        `envconfig:"NOTIFICATION_ROUTE" desc:"HTTP route of the orders subscription; default /orders, or /events/orders when order is served by the same app (the routes must differ)"`
	NotificationBulk      int           `envconfig:"NOTIFICATION_BULK" default:"100" desc:"with APP_PROTOCOL=grpc, at most this many order events in one delivery to the notification function (Dapr bulk subscribe; the function still handles one event at a time, the runtime runs a batch's events concurrently and answers each one's outcome); 0 delivers each event on its own; over HTTP it is not declared"`
	NotificationBulkAwait time.Duration `envconfig:"NOTIFICATION_BULK_AWAIT" default:"5ms" desc:"with NOTIFICATION_BULK, the longest daprd holds an order event to fill a delivery: at least 1ms, or 0 for daprd's default of 1s"`
	InventoryAppID        string        `envconfig:"INVENTORY_APP_ID" default:"inventory-service" desc:"app-id the order function invokes for stock, when inventory is not served by the same process"`
	StockLeaseUnits       int           `envconfig:"STOCK_LEASE_UNITS" default:"100" desc:"when the inventory runs in another app, the order function leases this many units of a product at a time (at most 1000) and places the orders that fit without calling the inventory (granted while the product has 16 times as many in stock); 0 takes stock order by order; above 0 HOLD_TTL must exceed ORDER_TIMEOUT plus 1s"`
	OrderStoreBinding     string        `envconfig:"ORDERSTORE_BINDING" default:"orderstore" desc:"output binding for order storage: bindings.localstorage (one JSON file per order) or bindings.postgresql (one row per order)"`
	OrderTable            string        `envconfig:"ORDER_TABLE" default:"orders" desc:"table for orders when the order storage binding is PostgreSQL (created at start if missing)"`
	EmailBinding          string        `envconfig:"EMAIL_BINDING" default:"email" desc:"output binding for emails: bindings.localstorage (one .eml file per order) or bindings.smtp"`
	EmailSweepBinding     string        `envconfig:"EMAIL_SWEEP_BINDING" default:"email-sweep" desc:"cron input binding that triggers the notification's sending of the confirmations it kept: those it could not send even from the dead-letter topic"`
	EmailFrom             string        `envconfig:"EMAIL_FROM" default:"shop@example.com" desc:"sender address of confirmation emails"`
	Catalog               string        `envconfig:"CATALOG" desc:"products as id:name:stock,..., e.g. product-1:Laptop:10,product-2:Mouse:50; default the tutorial's product-1 Laptop 10, product-2 Mouse 50, product-3 Keyboard 25"`
	RestockLevel          int           `envconfig:"RESTOCK_LEVEL" default:"0" desc:"stock the restock binding tops every product up to; 0 means each product's catalog stock"`
	RestockBinding        string        `envconfig:"RESTOCK_BINDING" default:"restock" desc:"cron input binding that triggers the restock"`
	HoldSweepBinding      string        `envconfig:"HOLD_SWEEP_BINDING" default:"hold-sweep" desc:"cron input binding that triggers the inventory's sweep of unconfirmed stock holds and unsettled stock leases"`
	OrderTimeout          time.Duration `envconfig:"ORDER_TIMEOUT" default:"20s" desc:"longest one POST /orders may take; after it the order is stored or never will be"`
	HoldTTL               time.Duration `envconfig:"HOLD_TTL" default:"60s" desc:"age after which the hold sweep settles a stock hold nobody confirmed, or a stock lease nobody settled, by looking the orders up; must exceed ORDER_TIMEOUT, and with STOCK_LEASE_UNITS above 0 ORDER_TIMEOUT plus 1s (the life of a stock lease)"`
	OrderAppID            string        `envconfig:"ORDER_APP_ID" default:"order-service" desc:"app-id the inventory's hold sweep asks whether an order exists (GET /orders/{id}), when order is not served by the same process"`
	SweepBinding          string        `envconfig:"OUTBOX_SWEEP_BINDING" default:"outbox-sweep" desc:"cron input binding that triggers the outbox sweep"`
	OutboxRetryAfter      time.Duration `envconfig:"OUTBOX_RETRY_AFTER" default:"5s" desc:"age after which the sweep re-delivers an order event still pending"`
	OutboxDeliveryWait    time.Duration `envconfig:"OUTBOX_DELIVERY_WAIT" default:"1s" desc:"longest an order waits for its event to be published and archived; past it the order is answered (it is stored) and the next orders leave their events to the outbox sweep until a sweep delivers again"`
	OutboxStaleAfter      time.Duration `envconfig:"OUTBOX_STALE_AFTER" default:"60s" desc:"silence after which another process adopts a dead process's pending order events"`
}

// envMarkdown is the Markdown table of every variable in Config, built from
// its envconfig, default and desc tags: what `shop env markdown` prints and
// docs/configuration.md holds between its markers.
func envMarkdown() string {
	var b strings.Builder
	b.WriteString("| variable | type | default | meaning |\n|---|---|---|---|\n")
	for f := range reflect.TypeFor[Config]().Fields() {
		key := f.Tag.Get("envconfig")
		if key == "" {
			continue
		}
		def := f.Tag.Get("default")
		if def != "" {
			def = "`" + def + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", key, envType(f.Type), def, strings.ReplaceAll(f.Tag.Get("desc"), "|", `\|`))
	}
	return b.String()
}

// envType names a Config field's type as its variable is written.
func envType(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return "duration"
	case t.Kind() == reflect.Slice:
		return "comma-separated list"
	case t.Kind() == reflect.Int:
		return "integer"
	}
	return t.Kind().String()
}

var functionNames = []string{"order", "inventory", "notification"}

func loadConfig() (Config, error) {
	var c Config
	if err := envconfig.Process("", &c); err != nil {
		return c, fmt.Errorf("configuration: %w", err)
	}
	for i, f := range c.Functions {
		c.Functions[i] = strings.TrimSpace(f)
		if !slices.Contains(functionNames, c.Functions[i]) {
			return c, fmt.Errorf("FUNCTIONS: unknown function %q: want any of %s", f, strings.Join(functionNames, ", "))
		}
	}
	if len(c.Functions) == 0 {
		return c, fmt.Errorf("FUNCTIONS is empty: want any of %s", strings.Join(functionNames, ", "))
	}
	if c.HoldTTL <= c.OrderTimeout {
		return c, fmt.Errorf("HOLD_TTL %s must be longer than ORDER_TIMEOUT %s: a hold is settled only once its order can no longer be stored", c.HoldTTL, c.OrderTimeout)
	}
	if c.StockLeaseUnits > 0 && c.HoldTTL <= c.OrderTimeout+order.LeaseLife {
		return c, fmt.Errorf("HOLD_TTL %s must be longer than ORDER_TIMEOUT %s plus %s (the life of a stock lease), or STOCK_LEASE_UNITS 0: a lease is settled only once its orders can no longer be stored", c.HoldTTL, c.OrderTimeout, order.LeaseLife)
	}
	if c.StockLeaseUnits < 0 || c.StockLeaseUnits > lease.MaxQuantity {
		return c, fmt.Errorf("STOCK_LEASE_UNITS %d: want 0 (off) to %d, e.g. 100", c.StockLeaseUnits, lease.MaxQuantity)
	}
	if c.OutboxDeliveryWait <= 0 {
		return c, fmt.Errorf("OUTBOX_DELIVERY_WAIT %s: want a positive duration, e.g. 1s", c.OutboxDeliveryWait)
	}
	if c.NotificationBulk < 0 {
		return c, fmt.Errorf("NOTIFICATION_BULK %d: want 0 (off) or the most events per delivery, e.g. 100", c.NotificationBulk)
	}
	if c.NotificationRoute == "" {
		c.NotificationRoute = "/orders"
		if c.serves("order") {
			c.NotificationRoute = "/events/orders"
		}
	}
	return c, nil
}

func (c Config) serves(fn string) bool { return slices.Contains(c.Functions, fn) }

func newLogger(c Config) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("LOG_LEVEL %q: want debug, info, warn or error", c.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.LogFormat {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("LOG_FORMAT %q: want text or json", c.LogFormat)
}
