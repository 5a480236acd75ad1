// Package e2e holds the end-to-end tests: real daprd processes (the pinned
// build, `make daprd`) on free ports, a private redis-server, and the
// project's functions served over HTTP and gRPC.
package e2e
