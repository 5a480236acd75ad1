// Package sidecarcost measures what one write through the sidecar costs
// daprd, Redis and the caller in CPU, per kind of write an order makes: a
// localstorage binding create (the shop's order and email files), a Redis
// binding create (the cheaper stand-in one might reach for) and a state save,
// over gRPC with the go-sdk client as the apps make them, and the same save
// over daprd's HTTP API. It holds only benchmarks, which start a real daprd
// (run as the launcher runs one with no exporter) and a private redis-server:
//
//	make daprd
//	go test -run '^$' -bench . -benchtime 20000x -count 3 -cpu 1 ./bench/sidecarcost
//
// (-cpu 1: GOMAXPROCS=1, as the function apps run.) Each reports
// daprd-µs/call and redis-µs/call, read from /proc around the timed calls,
// and client-µs/call, the benchmark process's own CPU over the same span
// (its only work then is making the calls), besides Go's wall-clock ns/op.
// bench/changes.md records what they measured and what was decided from it.
package sidecarcost
