// Package batch is group commit for functions that call their sidecar for
// many requests: the requests that arrive while one call is in flight go
// together in the next call, so a busy process pays one sidecar round trip
// for many requests, and an idle one sends each at once (or after a short
// linger, when it was told to wait for company).
//
// One Group serves one kind of call: a state write of one key, a batch of
// deletes, a POST of many orders. Do waits for a request's answer; Add
// queues a request whose answer nobody waits for; Take lets another call
// carry queued requests along.
package batch
