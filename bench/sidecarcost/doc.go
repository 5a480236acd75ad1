// Package sidecarcost measures what one write through the sidecar costs
// daprd (and Redis) in CPU, per kind of write an order makes: a localstorage
// binding create (the shop's order and email files), a Redis binding create
// (the cheaper stand-in one might reach for) and a state save. It holds only
// benchmarks, which start a real daprd (run as the launcher runs one with no
// exporter) and a private redis-server:
//
//	make daprd
//	go test -run '^$' -bench . -benchtime 20000x -count 3 ./bench/sidecarcost
//
// Each reports daprd-µs/call and redis-µs/call, read from /proc around the
// timed calls, besides Go's wall-clock ns/op. bench/changes.md records what
// they measured and what was decided from it.
package sidecarcost
