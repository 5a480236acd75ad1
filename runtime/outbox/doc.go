// Package outbox is the transactional outbox for functions on Dapr: save
// some state keys and publish an event as one atomic step, and redeliver
// what is pending after a failure or a crash.
//
// Commit writes the caller's keys and a pending record of the event in one
// state transaction, then publishes the event (and runs Config.After, e.g.
// archiving) and deletes the record in batches. If publishing fails, or the
// process dies, Sweep (run it from a cron input binding) finds the record and
// delivers it again. Consumers deduplicate by the event's id, which the
// outbox keeps from end to end: delivery is at least once.
//
// Records are found without listing the store, which Dapr cannot do: each
// process is an owner with a random id and numbers its records
// <prefix>-<owner>-<seq>. It reserves sequence numbers in blocks recorded in
// its heartbeat (<prefix>-owner-<owner>) before using them, and the owners
// are listed under one index key (<prefix>-owners). A sweep delivers the
// process's own records older than RetryAfter, beats its heartbeat, and
// adopts the records of owners whose heartbeat is older than StaleAfter.
// An adopted owner stays listed for LateCommits and is adopted again every
// StaleAfter meanwhile: a transaction it sent before it went silent (its
// host cut off from the store) can land after the first adoption, and is
// delivered then.
//
// No lock is held across a sidecar call: a Commit waits on the sidecar only
// for its own transaction and delivery, and for a new block of sequence
// numbers only when the block asked for ahead has not come yet. Every wait
// ends with its context; the clock is Config.Now.
//
// Dapr's own outbox (outboxPublishPubsub on the state store) is not used: it
// delays every event by at least a second and, over pubsub.in-memory,
// serialises publishing at one event per second. This one costs one
// transaction per commit plus batched deletes, and works over every state
// store and broker.
package outbox
