// Package functions is the home of the business steps: order, inventory
// and notification. Each is plain Go that depends on the bindings ports, not
// on Dapr; cmd/shop wires them to triggers with package runtime.
package functions
