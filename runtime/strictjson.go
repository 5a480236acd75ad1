package runtime

import (
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
// valid JSON text b.
func duplicateKey(b []byte) (string, bool) {
	type frame struct {
		object bool
		keys   []string
	}
	var stack []frame
	expectKey := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '{':
			stack = append(stack, frame{object: true})
			expectKey = true
		case '[':
			stack = append(stack, frame{})
			expectKey = false
		case '}', ']':
			stack = stack[:len(stack)-1]
			expectKey = false
		case ',':
			expectKey = len(stack) > 0 && stack[len(stack)-1].object
		case '"':
			end := stringEnd(b, i)
			if expectKey {
				key := string(b[i+1 : end])
				if strings.IndexByte(key, '\\') >= 0 {
					var k string
					if json.Unmarshal(b[i:end+1], &k) == nil {
						key = k
					}
				}
				top := &stack[len(stack)-1]
				for _, k := range top.keys {
					if k == key {
						return key, true
					}
				}
				top.keys = append(top.keys, key)
				expectKey = false
			}
			i = end
		}
	}
	return "", false
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
