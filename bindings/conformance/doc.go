// Package conformance is the shared test suite of the bindings ports: the
// in-memory implementations run it in unit tests and the Dapr-backed ones in
// the end-to-end tests against a real daprd, so the fake cannot drift from
// the real thing.
package conformance
