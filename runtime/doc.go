// Package runtime hosts small, typed Go functions and lets a Dapr sidecar
// trigger them.
//
// # The model in one page
//
// A function is plain Go: it takes a context and a typed input and returns a
// typed output or an error. It never sees HTTP, gRPC or CloudEvent envelopes:
//
//	func (s *Service) Check(ctx context.Context, in CheckRequest) (CheckResponse, error)
//	func (s *Service) Restock(ctx context.Context, tick runtime.BindingEvent[struct{}]) error
//	func (s *Service) Send(ctx context.Context, ev runtime.Event[OrderEvent]) error
//
// An [App] is one registry of such functions, built explicitly (no init, no
// package state). The generic adapters [Invoke], [Topic] and [Binding] decode
// the trigger's payload into the function's input type exactly once (no
// reflection beyond encoding/json), call it, and encode the answer once:
//
//	app := runtime.New(runtime.Options{Logger: log})
//	runtime.Invoke(app, "POST /check", inv.Check)                 // service invocation
//	runtime.Invoke(app, "GET /orders/{id}", orders.Get)           // path values via RequestBinder
//	runtime.Binding(app, "restock", inv.Restock)                  // input binding (cron)
//	runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "orders", Route: "/orders"}, notify.Send)
//
// A route registered with [Internal] answers only calls carrying the
// deployment's credential (Options.InternalToken, in [InternalTokenHeader]),
// which the other functions of the deployment send; anyone else gets a JSON
// 403. Routes are [Public] unless registered so:
//
//	runtime.Invoke(app, "POST /lease", inv.Lease, runtime.Internal)
//
// A [Subscription] with [BulkDelivery] asks daprd for Dapr's bulk subscribe
// (several events per call to the app, fewer sidecar hops under load); the
// function still gets one event at a time.
//
// Several functions of one App may subscribe to the same pubsub/topic: they
// share one Dapr subscription (the first registration's), each gets every
// event, concurrently, and daprd gets the least settled of their outcomes;
// a function that settled an event is not run again on its redelivery (for
// the topic's 4096 latest events, in memory).
//
// Package runtime/dapr serves an App to daprd over HTTP or gRPC (the app
// protocol); package runtime/runtimetest drives it without daprd. Package
// runtime/host is the main of a function app (host.Main reads the standard
// environment, dials the sidecar, serves the App and drains on SIGTERM), and
// package runtime/metrics counts every delivery by trigger, name and outcome
// for Prometheus, which host serves on METRICS_PORT (and, as JSON, to the
// deployment's functions on the internal route GET /runtime/metrics).
//
// # Outcomes are values
//
// A handler answers success (nil error), "retry later" or "drop (poison)".
// [Classify] turns any error into an [*Error] with one [Outcome], an HTTP status
// and a stable machine code; the transports map that, in one place each, to
// the trigger's protocol:
//
//	outcome  invocation (HTTP app)        topic    binding
//	success  200 + JSON body              SUCCESS  200
//	retry    5xx {"error","code"}         RETRY    500
//	drop     4xx {"error","code"}         DROP     400 (logged, not retried)
//
// Bad input (malformed JSON, a failed [Validator]) is a 400 for invocations
// and a DROP for topics: never a panic, never a 500, never a stack trace.
//
// # Middleware
//
// Cross-cutting behaviour is a [Middleware], func([Handler]) [Handler], as in
// net/http: [Recover], [Logging], [BodyLimit] and [Trace] compose around
// every trigger alike; [Defaults] is the usual stack.
package runtime
