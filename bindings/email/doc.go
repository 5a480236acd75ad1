// Package email sends messages through a Dapr output binding. With a
// bindings.localstorage component each message becomes one .eml file (RFC
// 5322 text, readable by any mail client); with bindings.smtp it goes to a
// real mail server. Which one is decided by the component's type alone.
package email
