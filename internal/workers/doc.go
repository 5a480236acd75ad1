// Package workers runs functions on goroutines that wait for the next
// function when they finish one, instead of ending. A goroutine that made a
// gRPC call has grown its stack to fit it; a fresh goroutine for the next
// call would grow (copy) its stack again, which CPU profiles of the shop
// under load showed as 9-20 % of an app's CPU (runtime.newstack). Reusing
// the goroutines keeps the grown stacks.
package workers
