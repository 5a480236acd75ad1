// Package lease is stock leases, both sides: the contract between the order
// and inventory functions (the body of the inventory's POST /lease and the
// order ids a lease's orders are stored under), the order side's Stock that
// places orders from leases, and the inventory side's Ledger.
//
// A busy order-service would otherwise cost the inventory a sidecar hop, a
// read and a conditional write for every few orders. With a lease it takes a
// block of units once (POST /lease), places the orders it can serve from the
// block without calling anyone, and settles the block when it is used up or
// Life old: the units its stored orders took stay taken, the rest go back.
// Settlements ride with the next lease request of the same product.
//
// The order-service stores each order it serves from a lease under an id
// derived from the lease's secret and the order's slot (OrderID): slot 0,
// 1, 2, ... A lease of n units serves at most n orders, so if its
// order-service dies before settling it, the inventory's hold sweep can
// still settle it exactly, by deriving the n ids and looking the orders up
// in one call (Ledger.Used, the order function's POST /orders/lookup). The
// secret keeps the ids unguessable to everyone but the two functions.
package lease
