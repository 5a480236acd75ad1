package main

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/daprfn/shop/functions/lease"
	"github.com/daprfn/shop/runtime/host"
)

// Config is every environment variable `shop serve` reads. `shop env` lists
// them; `shop env markdown` prints the table of docs/configuration.md.
type Config struct {
	// Env is the standard environment every function app reads (package
	// runtime/host): app port and protocol, sidecar, tokens, logging.
	host.Env
	Functions []string `envconfig:"FUNCTIONS" desc:"functions this process serves, comma-separated, from the function table (cmd/shop/functions.go: inventory, order, notification and any shop new added); empty: all of them"`

	StateStore            string        `envconfig:"STATESTORE" default:"statestore" desc:"state store component of the order and inventory functions"`
	NotificationStore     string        `envconfig:"NOTIFICATION_STATESTORE" default:"notification-state" desc:"state store component of the notification function (sent and dead-letter records); scoped apart so notification cannot read orders or stock"`
	Pubsub                string        `envconfig:"PUBSUB" default:"pubsub" desc:"pub/sub component"`
	OrdersTopic           string        `envconfig:"ORDERS_TOPIC" default:"orders" desc:"topic of order events"`
	DeadLetterTopic       string        `envconfig:"ORDERS_DEADLETTER_TOPIC" default:"orders-deadletter" desc:"dead-letter topic of the notification subscription"`
	EmailsTopic           string        `envconfig:"EMAILS_TOPIC" default:"emails" desc:"topic of the notification's \"emails sent\" events, which the storefront shows: published after the confirmations are sent, best effort (one event carries those sent while the previous publish was in flight; one that fails is dropped, never the email); empty publishes none"`
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
	RestockEvery          time.Duration `envconfig:"RESTOCK_EVERY" default:"30s" desc:"least time between two restocks of a product: a restock trigger sooner after the last top-up is ignored, so that calling the binding's route by service invocation cannot refill stock early; keep it below the restock binding's schedule; 0 for none"`
	RestockBinding        string        `envconfig:"RESTOCK_BINDING" default:"restock" desc:"cron input binding that triggers the restock"`
	HoldSweepBinding      string        `envconfig:"HOLD_SWEEP_BINDING" default:"hold-sweep" desc:"cron input binding that triggers the inventory's sweep of unconfirmed stock holds and unsettled stock leases"`
	OrderTimeout          time.Duration `envconfig:"ORDER_TIMEOUT" default:"20s" desc:"longest one POST /orders may take; after it the order is stored or never will be"`
	HoldTTL               time.Duration `envconfig:"HOLD_TTL" default:"60s" desc:"age after which the hold sweep settles a stock hold nobody confirmed, or a stock lease nobody settled, by looking the orders up; must exceed ORDER_TIMEOUT, and with STOCK_LEASE_UNITS above 0 ORDER_TIMEOUT plus 1s (the life of a stock lease)"`
	OrderAppID            string        `envconfig:"ORDER_APP_ID" default:"order-service" desc:"app-id the inventory's hold sweep asks whether an order exists (GET /orders/{id}, POST /orders/lookup for all the orders of a lease), when order is not served by the same process"`
	SweepBinding          string        `envconfig:"OUTBOX_SWEEP_BINDING" default:"outbox-sweep" desc:"cron input binding that triggers the outbox sweep"`
	OutboxRetryAfter      time.Duration `envconfig:"OUTBOX_RETRY_AFTER" default:"5s" desc:"age after which the sweep re-delivers an order event still pending"`
	OutboxDeliveryWait    time.Duration `envconfig:"OUTBOX_DELIVERY_WAIT" default:"1s" desc:"longest an order waits for its event to be published and archived; past it the order is answered (it is stored) and the next orders leave their events to the outbox sweep until a sweep delivers again"`
	OutboxStaleAfter      time.Duration `envconfig:"OUTBOX_STALE_AFTER" default:"60s" desc:"silence after which another process adopts a dead process's pending order events"`
}

// envMarkdown is the Markdown table of every variable `shop serve` reads:
// Config's, then each table function's own (function.config), built from
// their envconfig, default and desc tags. It is what `shop env markdown`
// prints and docs/configuration.md holds between its markers.
func envMarkdown() string {
	var b strings.Builder
	b.WriteString("| variable | type | default | meaning |\n|---|---|---|---|\n")
	for _, v := range envVars() {
		def := v.field.Tag.Get("default")
		if def != "" {
			def = "`" + def + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", v.key, envType(v.field.Type), def, strings.ReplaceAll(v.field.Tag.Get("desc"), "|", `\|`))
	}
	return b.String()
}

// envVar is one variable and the field it fills.
type envVar struct {
	key   string
	field reflect.StructField
}

// envVars lists Config's variables, then each table function's, in order.
func envVars() []envVar {
	out := structVars(reflect.TypeFor[Config](), "")
	for _, f := range functions {
		if f.config != nil {
			out = append(out, structVars(reflect.TypeOf(f.config), f.envPrefix())...)
		}
	}
	return out
}

// structVars lists the variables of the struct t as envconfig.Process(prefix,
// ...) reads them: tagged fields, embedded structs flattened.
func structVars(t reflect.Type, prefix string) []envVar {
	var out []envVar
	for f := range t.Fields() {
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			out = append(out, structVars(f.Type, prefix)...)
			continue
		}
		key := f.Tag.Get("envconfig")
		if key == "" {
			continue
		}
		if prefix != "" {
			key = prefix + "_" + key
		}
		out = append(out, envVar{key: strings.ToUpper(key), field: f})
	}
	return out
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

func loadConfig() (Config, error) {
	var c Config
	if err := envconfig.Process("", &c); err != nil {
		return c, fmt.Errorf("configuration: %w", err)
	}
	names := functionNames()
	for i, f := range c.Functions {
		c.Functions[i] = strings.TrimSpace(f)
		if !slices.Contains(names, c.Functions[i]) {
			return c, fmt.Errorf("FUNCTIONS: unknown function %q: want any of %s (cmd/shop/functions.go)", f, strings.Join(names, ", "))
		}
	}
	if len(c.Functions) == 0 {
		c.Functions = names
	}
	if err := c.Env.Check(); err != nil {
		return c, err
	}
	if c.HoldTTL <= c.OrderTimeout {
		return c, fmt.Errorf("HOLD_TTL %s must be longer than ORDER_TIMEOUT %s: a hold is settled only once its order can no longer be stored", c.HoldTTL, c.OrderTimeout)
	}
	if c.StockLeaseUnits > 0 && c.HoldTTL <= c.OrderTimeout+lease.Life {
		return c, fmt.Errorf("HOLD_TTL %s must be longer than ORDER_TIMEOUT %s plus %s (the life of a stock lease), or STOCK_LEASE_UNITS 0: a lease is settled only once its orders can no longer be stored", c.HoldTTL, c.OrderTimeout, lease.Life)
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

// envUsage prints envconfig's list of every variable: Config's, then each
// table function's own.
func envUsage() error {
	if err := envconfig.Usage("", &Config{}); err != nil {
		return err
	}
	for _, f := range functions {
		if f.config == nil {
			continue
		}
		cfg := reflect.New(reflect.TypeOf(f.config)).Interface()
		if err := envconfig.Usage(f.envPrefix(), cfg); err != nil {
			return err
		}
	}
	return nil
}
