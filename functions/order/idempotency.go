package order

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/runtime"
)

// An Idempotency-Key is claimed for the order it places: once the order
// has taken its stock, a claim naming the order is created under the key.
// Of two requests with the same key, on any replica, one creates the claim
// and stores its order; the other answers as that one did once its order
// is stored, or 409 while it is still being placed (its own stock hold goes
// back through the hold sweep). A claim whose order was never stored is
// taken over by the next request with the key after ClaimHold.

// IdempotencyTTL is how long an Idempotency-Key is remembered.
const IdempotencyTTL = 24 * time.Hour

// ErrKeyInUse answers a request whose Idempotency-Key another request is
// still placing an order for.
var ErrKeyInUse = runtime.Conflict("idempotency_key_in_use", "a request with this Idempotency-Key is still being processed; retry it in a few seconds")

// keyClaim is what an Idempotency-Key stores: the order it placed.
type keyClaim struct {
	OrderID string    `json:"orderId"`
	At      time.Time `json:"at"`
}

func idempotencyStateKey(k string) string {
	sum := sha256.Sum256([]byte(k))
	return "idempotency-" + hex.EncodeToString(sum[:16])
}

// claimHold is how long a claim whose order is not stored holds its key:
// past it, that order's Create has ended without storing it.
func (s *Service) claimHold() time.Duration { return 2 * s.CreateTimeout }

// replay looks key up. It returns the answer of the order key placed, once
// stored; ErrKeyInUse while another request holds the key; and otherwise
// the ETag to claim the key with ("" for a new key).
func (s *Service) replay(ctx context.Context, key string) (prev *CreateResponse, etag string, err error) {
	it, err := s.Store.Get(ctx, idempotencyStateKey(key))
	if err != nil {
		return nil, "", runtime.Unavailable(err, "checking the Idempotency-Key failed, try again")
	}
	if !it.Found {
		return nil, "", nil
	}
	var c keyClaim
	if json.Unmarshal(it.Value, &c) == nil && c.OrderID != "" {
		o, err := s.Store.Get(ctx, c.OrderID)
		if err != nil {
			return nil, "", runtime.Unavailable(err, "checking the Idempotency-Key failed, try again")
		}
		if o.Found {
			return &CreateResponse{OrderID: c.OrderID, Status: createdStatus}, "", nil
		}
		if s.now().Sub(c.At) < s.claimHold() {
			return nil, "", ErrKeyInUse
		}
	}
	return nil, it.ETag, nil // its order was never stored: the key is free again
}

// claim makes key the order orderID's, over the claim replay read (etag).
// If another request claimed it meanwhile, it answers as replay does.
func (s *Service) claim(ctx context.Context, key, etag, orderID string) (*CreateResponse, error) {
	raw, _ := json.Marshal(keyClaim{OrderID: orderID, At: s.now().UTC()})
	err := s.Store.Transact(ctx, []bindings.StateOp{{Key: idempotencyStateKey(key), Value: raw, ETag: etag, TTL: IdempotencyTTL}})
	switch {
	case err == nil:
		return nil, nil
	case errors.Is(err, bindings.ErrConflict):
		prev, _, rerr := s.replay(ctx, key)
		if rerr != nil || prev != nil {
			return prev, rerr
		}
		return nil, ErrKeyInUse
	default:
		return nil, runtime.Unavailable(err, "claiming the Idempotency-Key failed, try again")
	}
}
