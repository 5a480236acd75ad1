// Package stock is the inventory function's wire contract and the order
// function's view of the inventory.
//
// The inventory serves POST /check (the seed's contract: take a quantity of
// a product if there is enough), POST /reserve (the checks of many orders in
// one call, carrying the confirmations of stored orders) and POST /confirm.
// Their bodies and answers, with their validation, are declared here once,
// for the inventory that serves them and the client that calls them.
//
// The order function sees the inventory as a Stock: Take stock for an order,
// then Confirm it once the order is stored. Client is Stock over service
// invocation: the takes that arrive while a call is in flight share the next
// POST /reserve (group commit, package runtime/batch), confirmations ride
// along with it, and against the seed's inventory, which has no /reserve, it
// falls back to one POST /check per order.
package stock
