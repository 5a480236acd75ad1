package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/daprfn/shop/functions/notification"
	"github.com/daprfn/shop/functions/orderevent"
	"github.com/daprfn/shop/functions/storefront"
	"github.com/daprfn/shop/runtime"
)

// registerStorefront wires the storefront: its configuration from the
// STOREFRONT_ variables, its topics, and its web page on its own listener,
// which opens once the app is ready and closes when it stops. Every call it
// makes to the other functions goes through the sidecar, also where they
// run in this process.
func registerStorefront(s *shop) error {
	var cfg storefront.Config
	if err := envconfig.Process("STOREFRONT", &cfg); err != nil {
		return fmt.Errorf("storefront configuration: %w", err)
	}
	apps := cfg.Apps
	if len(apps) == 0 {
		apps = slices.Compact(slices.Sorted(slices.Values(append([]string{s.cfg.AppID}, s.cfg.InternalAppIDs...))))
	}
	appOf := func(fn, appID string) string { // a function this process serves is this app's
		if s.cfg.serves(fn) {
			return s.cfg.AppID
		}
		return appID
	}
	invoke := s.p.invokeWhole // the order function's error messages, whole
	if invoke == nil {
		invoke = s.p.invoke
	}
	svc, err := storefront.New(cfg, storefront.Shop{
		Invoker:   invoke,
		Orders:    appOf("order", s.cfg.OrderAppID),
		Inventory: appOf("inventory", s.cfg.InventoryAppID),
		Apps:      apps,
		OrderKey:  orderevent.Key(s.cfg.InternalToken),
		EmailKey:  notification.SentSigningKey(s.cfg.InternalToken),
	}, s.log)
	if err != nil {
		return err
	}
	storefront.Register(s.app, svc, storefrontTopics(s.cfg))
	s.app.Requires(runtime.Component{Kind: "pubsub", Name: s.cfg.Pubsub})

	srv := &http.Server{Handler: svc.Handler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	s.w.onReady = append(s.w.onReady, func(context.Context) error {
		addr := net.JoinHostPort(s.cfg.ListenAddress, strconv.Itoa(cfg.Port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("storefront page (STOREFRONT_PORT): %w", err)
		}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("storefront page stopped", "error", err.Error())
			}
		}()
		svc.Start()
		s.log.Info("storefront page listening", "address", ln.Addr().String())
		return nil
	})
	s.w.closers = append(s.w.closers, func() {
		svc.Close() // ends the pages' streams, so that Shutdown finds them idle
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return nil
}

// storefrontTopics are the storefront's subscriptions. Where the
// notification runs in the same app, the storefront shares its
// subscriptions of the orders topic and the dead-letter topic (the same
// pub/sub and topic: one Dapr subscription, every function gets every
// event). In an app of its own it dead-letters nothing (what it cannot
// show is dropped) and, over gRPC, takes events in bulk: up to 100 per
// call, held at most 20 ms, which a page does not notice and which spares
// its sidecar a call per order when the shop is busy.
func storefrontTopics(cfg Config) storefront.Topics {
	t := storefront.Topics{
		Orders:      runtime.Subscription{Pubsub: cfg.Pubsub, Topic: cfg.OrdersTopic},
		Emails:      runtime.Subscription{Pubsub: cfg.Pubsub, Topic: cfg.EmailsTopic},
		DeadLetters: runtime.Subscription{Pubsub: cfg.Pubsub, Topic: cfg.DeadLetterTopic},
	}
	if !cfg.serves("notification") {
		bulk := &runtime.BulkDelivery{MaxMessages: 100, MaxAwait: 20 * time.Millisecond}
		t.Orders.Bulk, t.Emails.Bulk = bulk, bulk
	}
	return t
}
