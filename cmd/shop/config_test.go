package main

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/runtime/host"
)

const (
	configDoc   = "../../docs/configuration.md"
	beginMarker = "<!-- BEGIN shop env markdown -->\n"
	endMarker   = "<!-- END shop env markdown -->"
)

// docs/configuration.md holds, between its markers, exactly the table that
// `shop env markdown` prints from Config's tags.
func TestConfigurationDocMatchesEnvMarkdown(t *testing.T) {
	doc, err := os.ReadFile(configDoc)
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(doc), beginMarker)
	require.True(t, ok, "docs/configuration.md has no line %q", strings.TrimSpace(beginMarker))
	block, _, ok := strings.Cut(rest, endMarker)
	require.True(t, ok, "docs/configuration.md has no line %q after its begin marker", endMarker)
	assert.Equal(t, envMarkdown(), block,
		"docs/configuration.md is out of date with Config in cmd/shop/config.go: replace the lines between its markers with the output of `go run ./cmd/shop env markdown`")
}

// The generated table has one row per variable, in Config's order (the
// embedded host.Env's first), then each table function's own, with the
// default envconfig applies.
func TestEnvMarkdownHasARowForEveryVariable(t *testing.T) {
	type row struct{ key, def string }
	var want []row
	for _, v := range envVars() {
		def := v.field.Tag.Get("default")
		if def != "" {
			def = "`" + def + "`"
		}
		want = append(want, row{v.key, def})
		assert.NotEmpty(t, v.field.Tag.Get("desc"), "%s has no desc tag to explain it", v.key)
	}
	fields := reflect.TypeFor[host.Env]().NumField() + reflect.TypeFor[Config]().NumField() - 1
	for _, f := range functions {
		if f.config != nil {
			fields += reflect.TypeOf(f.config).NumField()
		}
	}
	require.Len(t, want, fields, "every field is a variable")
	keys := map[string]bool{}
	for _, w := range want {
		assert.False(t, keys[w.key], "%s listed once", w.key)
		keys[w.key] = true
	}
	for _, k := range []string{"APP_ID", "INTERNAL_TOKEN", "FUNCTIONS", "OUTBOX_STALE_AFTER"} {
		assert.True(t, keys[k], k)
	}

	var got []row
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z_]+)` \\| [^|]+ \\| ([^|]*) \\|").FindAllStringSubmatch(envMarkdown(), -1) {
		got = append(got, row{m[1], strings.TrimSpace(m[2])})
	}
	assert.Equal(t, want, got)
}
