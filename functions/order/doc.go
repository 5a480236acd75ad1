// Package order takes orders: POST /orders and GET /orders/{id}, with the
// seed's wire contract.
//
// An order takes stock first (Stock, the inventory function; over service
// invocation the orders that fit in a lease of stock take it without a call,
// see LeaseStock, and the takes that arrive while a call is in flight share
// the next one, see InvokeStock), then commits the order and a pending-event record in
// one state transaction, then publishes the order event and archives it.
// The pending record is this package's transactional outbox: if publishing
// or archiving fails, or the process dies, a sweep (a cron input binding)
// finds the record and does it again; consumers deduplicate by order id,
// which is the event's id. The stock an order takes is held under its id
// until the order is stored and the hold confirmed (with the next takes,
// or on its own after a short wait); a hold
// nobody confirmed is settled by the inventory, which looks the order up
// once no Create can still store it.
//
// Dapr's own outbox is not used: it delays every event by at least a second
// and, over pubsub.in-memory, serialises orders at one per second
// (docs/guarantees.md). This outbox costs one transaction per order plus
// batched deletes, and works the same over every state store and broker.
package order
