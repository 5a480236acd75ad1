package state

import (
	"context"
	"slices"

	"github.com/daprfn/shop/bindings"
)

// Index keeps a set of ids under one key, so that records stored under keys
// of their own can be found again: a Dapr state store cannot list its keys.
// Add and Remove change the set with compare-and-swap, together with the
// operations on the records themselves in one transaction.
type Index struct {
	Store bindings.StateStore
	Key   string
	// Backoff between attempts when another writer changed the index.
	Backoff Backoff
}

type indexValue struct {
	IDs []string `json:"ids"`
}

// List returns the ids, oldest first.
func (ix Index) List(ctx context.Context) ([]string, error) {
	v, err := Update(ctx, ix.Store, ix.Key, func(*indexValue, bool) error { return ErrUnchanged })
	return v.IDs, err
}

// Add adds id, applying ops in the same transaction. An id already listed
// changes nothing, and ops are not applied: added tells which happened.
func (ix Index) Add(ctx context.Context, id string, ops ...bindings.StateOp) (added bool, err error) {
	_, err = UpdateWith(ctx, ix.Store, ix.Key, func(v *indexValue, _ bool) ([]bindings.StateOp, error) {
		added = !slices.Contains(v.IDs, id)
		if !added {
			return nil, ErrUnchanged
		}
		v.IDs = append(v.IDs, id)
		return ops, nil
	}, WithBackoff(ix.Backoff))
	return added, err
}

// Remove removes ids, applying ops in the same transaction, whether or not
// the ids were listed.
func (ix Index) Remove(ctx context.Context, ids []string, ops ...bindings.StateOp) error {
	_, err := UpdateWith(ctx, ix.Store, ix.Key, func(v *indexValue, _ bool) ([]bindings.StateOp, error) {
		v.IDs = slices.DeleteFunc(v.IDs, func(id string) bool { return slices.Contains(ids, id) })
		return ops, nil
	}, WithBackoff(ix.Backoff))
	return err
}
