package runtime

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
)

func TestCheckJSONText(t *testing.T) {
	for body, code := range map[string]string{
		`{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}`: "",
		`{"a":1,"a":2}`:               "duplicate_key",
		`{"a":{"x":1,"x":1}}`:         "duplicate_key",
		`[{"a":1,"b":2,"a":3}]`:       "duplicate_key",
		`{"a":1,"\u0061":2}`:          "duplicate_key",
		`{"a\"b":1,"a\\\"b":2}`:       "",
		`{"k":"}\"{","k2":"x"}`:       "",
		"{\"a\":\"\xff\"}":            "invalid_encoding",
		"{\"\xff\":0,\"\xf7\":0}":     "invalid_encoding", // json.Unmarshal reads both keys as U+FFFD: refused before the duplicate check
		`"just a string"`:             "",
		`{"a":[1,2,{"b":[],"c":{}}]}`: "",
	} {
		err := checkJSONText([]byte(body))
		if code == "" {
			assert.Nil(t, err, body)
			continue
		}
		if assert.NotNil(t, err, body) {
			assert.Equal(t, code, err.Code, body)
			assert.Equal(t, 400, err.Status)
		}
	}
}

func TestCheckContentType(t *testing.T) {
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "application/cloudevents+json"} {
		assert.Nil(t, checkContentType(ct), ct)
	}
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "application/jsonx", ";;"} {
		e := checkContentType(ct)
		if assert.NotNil(t, e, ct) {
			assert.Equal(t, 415, e.Status)
			assert.Equal(t, "unsupported_media_type", e.Code)
		}
	}
}

// hasDuplicateKeyRef is the slow, obviously right reference: it walks the
// tokens of encoding/json's decoder.
func hasDuplicateKeyRef(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		object    bool
		keys      map[string]bool
		expectKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF || err != nil {
			return false
		}
		top := (*frame)(nil)
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				if top != nil && top.object {
					top.expectKey = true
				}
				stack = append(stack, &frame{object: true, keys: map[string]bool{}, expectKey: true})
			case '[':
				if top != nil && top.object {
					top.expectKey = true
				}
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if top != nil && top.object && top.expectKey {
				if top.keys[v] {
					return true
				}
				top.keys[v] = true
				top.expectKey = false
				continue
			}
			if top != nil && top.object {
				top.expectKey = true
			}
		default:
			if top != nil && top.object {
				top.expectKey = true
			}
		}
	}
}

func FuzzDuplicateKey(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, `{"a":{"b":1},"b":[{"a":1,"a":1}]}`, `{"\u0061":1,"a":2}`, `[1,"a",{"x":"y"}]`, `{"a\\":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) || !utf8.Valid(b) {
			return // checkJSONText looks for duplicates only in what json.Unmarshal accepted and is UTF-8
		}
		_, got := duplicateKey(b)
		if want := hasDuplicateKeyRef(b); got != want {
			t.Fatalf("duplicateKey(%q) = %v, want %v", b, got, want)
		}
	})
}
