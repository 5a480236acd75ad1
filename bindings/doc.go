// Package bindings holds the ports a function calls to reach the outside
// world through its sidecar: state, pub/sub, output bindings and service
// invocation. Each port is a small interface; bindings/dapr implements them
// over the real sidecar (go-sdk, gRPC), bindings/memory in memory for unit
// tests, and bindings/conformance holds the one test suite both must pass.
//
// Functions depend on these interfaces only, never on Dapr packages.
package bindings
