// Command nullapp is the benchmark's floor: the shop's three apps with no
// business logic, making the same Dapr calls per order over the same
// transports (invoke the inventory, save the order, publish its event,
// receive it), so `make bench` can say what the shop costs above Dapr itself.
//
//	ROLE=order         POST /orders: invoke inventory /check, save, publish
//	ROLE=inventory     POST /check: always available
//	ROLE=notification  subscribes to the orders topic and counts; GET /count
//
// With BINDINGS=true the order role also writes the order to the orderstore
// output binding and the notification role the email to the email binding,
// one create each, as the shop does.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"

	"github.com/kelseyhightower/envconfig"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/bindings/dapr"
	"github.com/daprfn/shop/runtime"
	daprrt "github.com/daprfn/shop/runtime/dapr"
)

type config struct {
	Role           string `envconfig:"ROLE" required:"true"`
	AppID          string `envconfig:"APP_ID" default:"order-service"`
	AppPort        int    `envconfig:"APP_PORT" default:"3000"`
	AppProtocol    string `envconfig:"APP_PROTOCOL" default:"http"`
	DaprGRPCPort   int    `envconfig:"DAPR_GRPC_PORT" default:"50001"`
	InventoryAppID string `envconfig:"INVENTORY_APP_ID" default:"inventory-service"`
	Topic          string `envconfig:"ORDERS_TOPIC" default:"orders"`
	Bindings       bool   `envconfig:"BINDINGS" default:"false"`
}

type orderIn struct {
	ProductID     string `json:"productId"`
	Quantity      int    `json:"quantity"`
	CustomerEmail string `json:"customerEmail"`
}

type orderOut struct {
	OrderID string `json:"orderId"`
	Status  string `json:"status"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "nullapp:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sc, err := dapr.New(dapr.Config{Address: net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.DaprGRPCPort)), StateStore: "statestore"})
	if err != nil {
		return err
	}
	defer sc.Close()
	app := runtime.New(runtime.Options{Logger: log})
	var count atomic.Int64
	switch cfg.Role {
	case "order":
		runtime.Invoke(app, "POST /orders", func(ctx context.Context, in orderIn) (orderOut, error) {
			body, _ := json.Marshal(map[string]any{"productId": in.ProductID, "quantity": in.Quantity})
			if _, err := sc.Invoke(ctx, cfg.InventoryAppID, "POST", "check", body); err != nil {
				return orderOut{}, err
			}
			var b [16]byte
			_, _ = rand.Read(b[:])
			id := "order-" + hex.EncodeToString(b[:])
			order, _ := json.Marshal(map[string]any{"id": id, "productId": in.ProductID, "quantity": in.Quantity, "customerEmail": in.CustomerEmail, "status": "confirmed"})
			if err := sc.Save(ctx, id, order, ""); err != nil {
				return orderOut{}, err
			}
			ev := bindings.Event{ID: id, Source: cfg.AppID, Type: "com.daprfn.order.confirmed", Data: map[string]any{"orderId": id, "customerEmail": in.CustomerEmail}}
			if err := sc.Publish(ctx, "pubsub", cfg.Topic, ev); err != nil {
				return orderOut{}, err
			}
			if cfg.Bindings {
				if _, err := sc.InvokeBinding(ctx, "orderstore", "create", order, map[string]string{"fileName": id + ".json"}); err != nil {
					return orderOut{}, err
				}
			}
			return orderOut{OrderID: id, Status: "Order created successfully"}, nil
		})
	case "inventory":
		runtime.Invoke(app, "POST /check", func(context.Context, struct{}) (map[string]any, error) {
			return map[string]any{"available": true, "productName": "Laptop", "remainingStock": 1}, nil
		})
	case "notification":
		runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: cfg.Topic, Route: "/orders"}, func(ctx context.Context, ev runtime.Event[json.RawMessage]) error {
			if cfg.Bindings {
				eml := "To: customer@example.com\r\nSubject: Order confirmation " + ev.ID + "\r\n\r\n" + string(ev.Data)
				if _, err := sc.InvokeBinding(ctx, "email", "create", []byte(eml), map[string]string{"fileName": ev.ID + ".eml"}); err != nil {
					return runtime.RetryLater(err)
				}
			}
			count.Add(1)
			return nil
		})
		runtime.Invoke(app, "GET /count", func(context.Context, struct{}) (map[string]int64, error) {
			return map[string]int64{"count": count.Load()}, nil
		})
	default:
		return fmt.Errorf("ROLE %q: want order, inventory or notification", cfg.Role)
	}
	srv, err := daprrt.NewServer(app, daprrt.ServerConfig{Protocol: daprrt.Protocol(cfg.AppProtocol), Address: ":" + strconv.Itoa(cfg.AppPort)}, nil)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}
