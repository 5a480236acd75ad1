package state

import (
	"context"
	"slices"

	"github.com/daprfn/shop/bindings"
)

// Index keeps a set of ids under one key, so that records stored under keys
// of their own can be found again: a Dapr state store cannot list its keys.
// Add and Remove change the set with compare-and-swap. Write a record
// before adding its id and delete it before removing the id, so that every
// listed id has had its record; a reader treats a listed id without a
// record as one whose removal did not finish.
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

// Add adds id; added is false when it was listed already.
func (ix Index) Add(ctx context.Context, id string) (added bool, err error) {
	_, err = Update(ctx, ix.Store, ix.Key, func(v *indexValue, _ bool) error {
		added = !slices.Contains(v.IDs, id)
		if !added {
			return ErrUnchanged
		}
		v.IDs = append(v.IDs, id)
		return nil
	}, WithBackoff(ix.Backoff))
	return added, err
}

// Remove removes ids, whether or not they were listed.
func (ix Index) Remove(ctx context.Context, ids ...string) error {
	_, err := Update(ctx, ix.Store, ix.Key, func(v *indexValue, _ bool) error {
		n := len(v.IDs)
		v.IDs = slices.DeleteFunc(v.IDs, func(id string) bool { return slices.Contains(ids, id) })
		if len(v.IDs) == n {
			return ErrUnchanged
		}
		return nil
	}, WithBackoff(ix.Backoff))
	return err
}
