// Package dapr implements the bindings ports over a real Dapr sidecar: one
// gRPC connection to daprd's API through the go-sdk client, carrying the
// caller's deadline, trace context (traceparent) and DAPR_API_TOKEN on every
// call.
package dapr
