// Package runtimetest is an in-memory fake of the Dapr sidecar for unit
// tests: it drives registered functions through the same HTTP transport
// daprd uses (invocation, CloudEvent topic deliveries with dead-lettering,
// input bindings) and provides the in-memory ports of bindings/memory for
// state, publish, output bindings and service invocation. Function tests
// need no daprd; the same conformance suites run against the real one.
package runtimetest
