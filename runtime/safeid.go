package runtime

// SafeID reports whether id is 1 to 200 ASCII letters, digits, '-', '_' or
// '.', not starting with '.': safe as a state key, a URL path segment and a
// file name. Functions check ids from outside (order ids in events, paths
// and bodies) with it before using them.
func SafeID(id string) bool {
	if id == "" || len(id) > 200 || id[0] == '.' {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}
