package runtime

import (
	"fmt"
	"strings"
)

// route is one parsed pattern "METHOD /literal/{wildcard}".
type route struct {
	method   string
	segments []string // "{name}" marks a wildcard
	pattern  string
	access   Access
	handler  Handler
}

func parsePattern(pattern string) (method string, segments []string, err error) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok || method == "" || !strings.HasPrefix(path, "/") {
		return "", nil, fmt.Errorf("route pattern %q: want \"METHOD /path\", e.g. \"GET /orders/{id}\"", pattern)
	}
	path = strings.Trim(path, "/")
	if path == "" {
		return method, nil, nil
	}
	segments = strings.Split(path, "/")
	for _, s := range segments {
		if s == "" {
			return "", nil, fmt.Errorf("route pattern %q: empty path segment", pattern)
		}
		if strings.HasPrefix(s, "{") != strings.HasSuffix(s, "}") {
			return "", nil, fmt.Errorf("route pattern %q: unbalanced wildcard %q", pattern, s)
		}
	}
	return method, segments, nil
}

// match reports whether method and path (no leading slash) match r, and
// appends the wildcard values to params.
func (r *route) match(method, path string, params []string) ([]string, bool) {
	if r.method != method {
		return params, false
	}
	path = strings.Trim(path, "/")
	for i, seg := range r.segments {
		if path == "" {
			return params, false
		}
		part, rest, _ := strings.Cut(path, "/")
		if seg[0] == '{' {
			params = append(params, seg[1:len(seg)-1], part)
		} else if seg != part {
			return params, false
		}
		path = rest
		if i == len(r.segments)-1 && path != "" {
			return params, false
		}
	}
	return params, path == ""
}

// overlaps reports whether two routes can match the same request.
func (r *route) overlaps(o *route) bool {
	if r.method != o.method || len(r.segments) != len(o.segments) {
		return false
	}
	for i := range r.segments {
		a, b := r.segments[i], o.segments[i]
		if a[0] != '{' && b[0] != '{' && a != b {
			return false
		}
	}
	return true
}
