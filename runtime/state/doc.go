// Package state holds the read-modify-write steps every function that keeps
// state needs, over any bindings.StateStore (the Dapr sidecar's, or the
// in-memory one of unit tests):
//
//   - Update changes one JSON value under a key with compare-and-swap: read
//     it with its ETag, change it in a function, and write it only if nobody
//     wrote it meanwhile, else read again and retry after a jittered backoff
//     that honours the context.
//   - Group is Update for keys many callers change at once: the changes
//     to a key that arrive while a write of it is in flight go together in
//     the next Update (group commit, package batch).
//   - Index keeps the ids of a set of records under one key, because a Dapr
//     state store cannot be listed.
//
// A change function may run more than once (once per attempt), so it must
// only change the value it is given, and return ErrUnchanged when there is
// nothing to write.
package state
