// Package dapr serves a runtime.App to the Dapr sidecar (daprd) over the app
// protocol daprd is started with (--app-protocol http or grpc) and is the
// only package that speaks daprd's app-facing protocol.
//
// Over HTTP it answers daprd's GET /dapr/subscribe and GET /dapr/config, the
// OPTIONS probe and POSTs of input bindings, topic deliveries (structured
// CloudEvents, CloudEvents posted by users, raw payloads) and service
// invocations. Over gRPC it implements the AppCallback and
// AppCallbackHealthCheck services, including OnBulkTopicEvent for
// subscriptions with runtime.BulkDelivery (each event of a batch is
// dispatched on its own, concurrently, and answered with its own status).
// Both feed the same runtime.Message into App.Dispatch and map the answer's
// outcome in one place each: httpStatus and topicStatus here.
//
// The gRPC app protocol carries about 1.5x the orders per second through the
// sidecars, but daprd rewrites an invocation's error answer into a
// google.rpc.Status JSON for HTTP callers ({"code":3,"message":...}); the
// HTTP app protocol keeps this project's {"error","code"} body verbatim. The
// status code (400, 404, 503, ...) survives either way.
//
// Server runs either transport with readiness (the sidecar must list every
// component the App requires), APP_API_TOKEN enforcement and a graceful drain
// on shutdown.
package dapr
