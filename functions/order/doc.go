// Package order takes orders: POST /orders and GET /orders/{id}, with the
// seed's wire contract.
//
// An order is four steps (Service.Create): validate the request, take its
// stock from the inventory (Stock), store the order together with its event,
// and answer. The order and its event are one atomic step through the
// transactional outbox (runtime/outbox): if publishing fails, or the process
// dies, the outbox's sweep delivers the event later, and the notification
// deduplicates by the event's id, which is the order's. Every event is
// signed, so the notification can tell the order function's events from
// ones anybody could post.
//
// The stock an order takes is held under the order's id until the order is
// stored and Stock.Confirm says so. A hold nobody confirmed (the commit
// failed, or the process died in between) is settled by the inventory, which
// looks the order up once no Create can still store it
// (DefaultCreateTimeout): an order is never oversold, and no stock leaks.
//
// With an Idempotency-Key header, the key is claimed for the order once
// it has its stock (idempotency.go): a repeated request answers as the first
// did, and one that comes while the first is still being placed, or before
// a failed one's outcome is known, gets a 409.
package order
