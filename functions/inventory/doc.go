// Package inventory keeps product stock in the state store and takes it
// atomically: POST /check (the seed's contract, plus an optional order id
// that holds the stock for that order), POST /reserve (the checks of many
// orders in one call, carrying the confirmations of stored orders' holds),
// POST /confirm, POST /lease (blocks of units an order-service places
// orders from on its own, see package lease), GET /inventory, and two cron
// steps: restock, and the hold sweep that settles the holds nobody
// confirmed and the leases nobody settled by looking their orders up.
//
// Stock never goes below zero: every change is an ETag compare-and-swap on
// the product's key (runtime/state), and the changes to one product within
// one process share their writes (group commit, runtime/batch), so
// replicas, not goroutines, are what conflict. The wire types are package
// stock's.
package inventory
