// Package memory implements the bindings ports in memory, with the same
// semantics as the Dapr-backed implementation (ETags, create-if-absent,
// CloudEvent encoding); bindings/conformance checks that both agree. It is
// the sending half of the fake sidecar in runtime/runtimetest.
package memory
