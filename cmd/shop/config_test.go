package main

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The README's configuration table documents every variable `bin/shop
// serve` reads, with the default it has in Config.
func TestReadmeDocumentsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	rows := map[string]string{} // variable -> its default cell
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z_]+)` \\|([^|]*)\\|").FindAllStringSubmatch(string(readme), -1) {
		rows[m[1]] = strings.TrimSpace(m[2])
	}
	typ := reflect.TypeFor[Config]()
	require.Positive(t, typ.NumField())
	for f := range typ.Fields() {
		key := f.Tag.Get("envconfig")
		if key == "" {
			continue
		}
		cell, ok := rows[key]
		if !assert.True(t, ok, "README's configuration table has no row for %s", key) {
			continue
		}
		if def := f.Tag.Get("default"); strings.HasPrefix(cell, "`") && strings.HasSuffix(cell, "`") && !strings.Contains(cell[1:len(cell)-1], "`") {
			assert.Equal(t, def, strings.Trim(cell, "`"), "README's default of %s", key)
		}
	}
}
