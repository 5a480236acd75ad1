package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// repoComponents reads the repository's component sets (components/<set>)
// as they ship, with the app-ids in their scopes renamed to the test's and
// other values replaced as repl says (e.g. data paths to temp dirs). Every
// replacement must apply to some file: one that no longer matches what the
// files say fails the test instead of silently changing nothing.
func repoComponents(t *testing.T, sets []string, ids map[string]string, repl map[string]string) map[string]string {
	t.Helper()
	return repoComponentsAt(t, "..", sets, ids, repl)
}

// repoComponentsAt is repoComponents of the repository at root. A function
// whose app-id is its own name (as shop new makes them) is renamed too.
func repoComponentsAt(t *testing.T, root string, sets []string, ids map[string]string, repl map[string]string) map[string]string {
	t.Helper()
	out := map[string]string{}
	applied := map[string]bool{}
	for _, set := range sets {
		dir := filepath.Join(root, "components", set)
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		for _, e := range entries {
			raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
			require.NoError(t, err)
			s := string(raw)
			for fn, id := range ids {
				s = strings.ReplaceAll(s, "- "+fn+"-service\n", "- "+id+"\n")
				s = strings.ReplaceAll(s, "- "+fn+"\n", "- "+id+"\n")
			}
			for old, n := range repl {
				if strings.Contains(s, old) {
					applied[old] = true
					s = strings.ReplaceAll(s, old, n)
				}
			}
			out[set+"-"+e.Name()] = s
		}
	}
	for old := range repl {
		require.True(t, applied[old], "no component of %v contains %q", sets, old)
	}
	return out
}
