// Package functions is the home of the business steps: order, inventory
// and notification, and the storefront, the web page that shows them at
// work. Each is plain Go that depends on the bindings ports, not
// on Dapr; cmd/shop wires them to triggers with package runtime.
package functions
