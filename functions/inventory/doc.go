// Package inventory keeps product stock in the state store and takes it
// atomically: POST /check (the seed's contract, plus an order id that holds
// the stock for the order), POST /reserve (many checks in one call, with the
// confirmations of stored orders), POST /confirm, POST /lease (see package
// lease), GET /inventory, and two cron steps: restock, and the hold sweep
// that settles the holds and leases nobody settled by looking orders up.
//
// Stock never goes below zero: every change is a compare-and-swap of the
// product's record, and one process's changes to a product share their
// writes (state.Group). The wire types are package stock's.
package inventory
