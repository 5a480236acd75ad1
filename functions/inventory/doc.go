// Package inventory keeps product stock in the state store and takes it
// atomically: POST /check (the seed's contract, plus an optional order id
// that holds the stock for that order), POST /reserve (the checks of many
// orders in one call, carrying the confirmations of stored orders' holds),
// POST /confirm for those holds on their own, POST /lease (blocks of units
// an order-service places orders from without a call, see package lease),
// GET /inventory, and two steps for cron input bindings: restock, and the
// hold sweep that settles holds nobody confirmed and leases nobody settled
// by looking the orders up.
//
// Stock never goes below zero and never more is confirmed than there was:
// every change is an ETag compare-and-swap on the product's key, retried a
// bounded number of times on conflict, and changes to one product within
// one process are applied in batches (group commit: one read and one write
// per batch) so replicas, not goroutines, are what conflict.
package inventory
