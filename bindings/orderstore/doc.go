// Package orderstore archives records (confirmed orders) through a Dapr
// output binding: one JSON file per record with bindings.localstorage, or a
// row in PostgreSQL with bindings.postgresql. The component's type alone
// decides; writing the same record twice leaves one file or one row.
package orderstore
