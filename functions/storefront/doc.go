// Package storefront is the shop's own web page, a function like the
// others: products with their live stock, an order form, every order as it
// is placed, stored and emailed, the latest emails, dead letters, and each
// app's function counters.
//
// The browser talks only to the storefront, on its own HTTP listener; the
// storefront talks to the other functions only through its sidecar: it
// places orders and reads the stock by service invocation (POST /orders,
// GET /inventory), reads each app's counters from the runtime's internal
// route (package runtime/metrics), and follows the topics: the order
// events (stored), the notification's "emails sent" events (emailed) and
// the dead-letter topic. The page is updated by server-sent events; a page
// that reconnects with Last-Event-ID gets what it missed from a bounded
// history.
package storefront
