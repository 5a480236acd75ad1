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

// The generated table has one row per Config variable, in Config's order,
// with the default envconfig applies.
func TestEnvMarkdownHasARowForEveryVariable(t *testing.T) {
	type row struct{ key, def string }
	var want []row
	for f := range reflect.TypeFor[Config]().Fields() {
		if key := f.Tag.Get("envconfig"); key != "" {
			def := f.Tag.Get("default")
			if def != "" {
				def = "`" + def + "`"
			}
			want = append(want, row{key, def})
			assert.NotEmpty(t, f.Tag.Get("desc"), "%s has no desc tag to explain it", key)
		}
	}
	require.NotEmpty(t, want)

	var got []row
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z_]+)` \\| [^|]+ \\| ([^|]*) \\|").FindAllStringSubmatch(envMarkdown(), -1) {
		got = append(got, row{m[1], strings.TrimSpace(m[2])})
	}
	assert.Equal(t, want, got)
}
