// Package procdefaults holds the Go runtime settings the project's function
// apps run with unless their environment chooses: GOGC=100 and GOMAXPROCS=1,
// both measured by `make bench` (docs/configuration.md, bench/changes.md). The shop and the
// benchmark's null apps apply the same settings, so the floor they are
// compared with runs on equal terms.
package procdefaults
