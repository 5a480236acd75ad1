package runtime

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"
)

// checkJSONText rejects what encoding/json would accept silently but a
// client cannot have meant: bytes that are not UTF-8 (json replaces them with
// U+FFFD) and an object with the same key twice (json keeps the last). It
// runs on bodies json.Unmarshal has accepted, so it only tracks structure.
func checkJSONText(body []byte) *Error {
	if !utf8.Valid(body) {
		return Invalid("invalid_encoding", "the body is not valid UTF-8: send JSON text in UTF-8")
	}
	if key, dup := duplicateKey(body); dup {
		return Invalid("duplicate_key", "the JSON object has the key %q more than once: send each field once", key)
	}
	return nil
}

// duplicateKey reports the first key that appears twice in one object of the
// valid JSON text b, which must be valid UTF-8 too (checkJSONText checks it
// first: json.Unmarshal would read distinct invalid bytes as the same
// U+FFFD). It allocates nothing for bodies of ordinary shape: keys
// are compared as spans of b (unescaped only when they hold a backslash).
func duplicateKey(b []byte) (string, bool) {
	type span struct{ from, to int } // a key's bytes between its quotes
	type frame struct {
		object   bool
		firstKey int // index in keys of this object's first key
	}
	var (
		frameBuf  [16]frame
		keyBuf    [32]span
		stack     = frameBuf[:0]
		keys      = keyBuf[:0]
		expectKey bool
	)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '{':
			stack = append(stack, frame{object: true, firstKey: len(keys)})
			expectKey = true
		case '[':
			stack = append(stack, frame{firstKey: len(keys)})
			expectKey = false
		case '}', ']':
			keys = keys[:stack[len(stack)-1].firstKey]
			stack = stack[:len(stack)-1]
			expectKey = false
		case ',':
			expectKey = len(stack) > 0 && stack[len(stack)-1].object
		case '"':
			end := stringEnd(b, i)
			if expectKey {
				k := span{i + 1, end}
				for _, prev := range keys[stack[len(stack)-1].firstKey:] {
					if sameKey(b, prev.from, prev.to, k.from, k.to) {
						return unescapedKey(b, k.from, k.to), true
					}
				}
				keys = append(keys, k)
				expectKey = false
			}
			i = end
		}
	}
	return "", false
}

// sameKey compares two keys of b given as spans between their quotes.
func sameKey(b []byte, f1, t1, f2, t2 int) bool {
	k1, k2 := b[f1:t1], b[f2:t2]
	if bytes.IndexByte(k1, '\\') < 0 && bytes.IndexByte(k2, '\\') < 0 {
		return bytes.Equal(k1, k2)
	}
	return unescapedKey(b, f1, t1) == unescapedKey(b, f2, t2)
}

// unescapedKey returns the key between b[from-1] and b[to] as a string.
func unescapedKey(b []byte, from, to int) string {
	raw := b[from:to]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw)
	}
	var k string
	if json.Unmarshal(b[from-1:to+1], &k) != nil {
		return string(raw)
	}
	return k
}

// stringEnd returns the index of the quote closing the string that opens at
// b[start].
func stringEnd(b []byte, start int) int {
	for i := start + 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return len(b) - 1
}

// checkContentType accepts a JSON media type (application/json or any
// +json) for a non-empty invocation body.
func checkContentType(ct string) *Error {
	if ct == "application/json" { // what daprd and most clients send
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if ct != "" && err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return nil
	}
	shown := ct
	if shown == "" {
		shown = "none"
	}
	return &Error{Outcome: Drop, Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
		Message: "Content-Type " + shown + " is not JSON: send the body with Content-Type: application/json"}
}
