package runtime

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
)

// Access says who may call an invocation route.
type Access uint8

const (
	// Public routes answer anyone who reaches the sidecar: the contract a
	// deployment offers its users (the seed's order and inventory lines).
	Public Access = iota
	// Internal routes answer only calls that carry the deployment's internal
	// credential (Options.InternalToken, sent by the sidecar client as the
	// InternalTokenHeader): the other functions of the same deployment. A
	// call through the public sidecar port cannot carry it and gets a JSON
	// 403 with the code "internal_route".
	Internal
)

// String names the access level for logs and docs.
func (a Access) String() string {
	if a == Internal {
		return "internal"
	}
	return "public"
}

// InternalTokenHeader is the header (gRPC metadata key) that carries the
// internal credential on a service invocation. daprd passes it from the
// calling app through both sidecars to the called app unchanged.
const InternalTokenHeader = "fn-internal-token"

// internalOnly guards h: a call without the internal credential is refused
// before h runs. With no credential configured every call is refused, so a
// deployment that forgot it fails closed.
func internalOnly(h Handler, token, pattern string) Handler {
	// Digests of equal length compared in constant time: neither the
	// token's bytes nor its length show in the time a refusal takes.
	want := sha256.Sum256([]byte(token))
	return HandlerFunc(func(ctx context.Context, m *Message) Reply {
		got := sha256.Sum256([]byte(m.Get(InternalTokenHeader)))
		if token == "" || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return Reply{Err: Forbidden("internal_route", "%s is internal: only the deployment's own functions may call it", pattern)}
		}
		return h.Handle(ctx, m)
	})
}

// DeriveKey derives a key for purpose (for example "order-events") from the
// internal credential, so one shared secret serves several uses without one
// use revealing another's key. It returns nil when token is empty.
func DeriveKey(token, purpose string) []byte {
	if token == "" {
		return nil
	}
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte(purpose))
	return mac.Sum(nil)
}

// Sign returns the base64url HMAC-SHA256 of the fields under key, each
// field length-prefixed so that no two field lists share a signature.
func Sign(key []byte, fields ...string) string {
	mac := hmac.New(sha256.New, key)
	var n [8]byte
	for _, f := range fields {
		l := uint64(len(f))
		for i := range n {
			n[i] = byte(l >> (8 * i))
		}
		mac.Write(n[:])
		mac.Write([]byte(f))
	}
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// Verify reports whether sig is Sign(key, fields...), in constant time. An
// empty key or signature never verifies.
func Verify(key []byte, sig string, fields ...string) bool {
	if len(key) == 0 || sig == "" {
		return false
	}
	return hmac.Equal([]byte(Sign(key, fields...)), []byte(sig))
}
