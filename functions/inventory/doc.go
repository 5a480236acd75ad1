// Package inventory keeps product stock in the state store and takes it
// atomically: POST /check (the seed's contract), GET /inventory, POST
// /release for an order's compensation, and a restock step for a cron input
// binding.
//
// Stock never goes below zero and never more is confirmed than there was:
// every change is an ETag compare-and-swap on the product's key, retried a
// bounded number of times on conflict, and changes to one product within
// one process are applied in batches (group commit: one read and one write
// per batch) so replicas, not goroutines, are what conflict.
package inventory
