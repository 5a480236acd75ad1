// Package docs holds the user documentation; its test keeps the README and
// these pages honest: every link resolves inside the repository, every make
// target they name exists, and the README stays a five-minute read.
package docs

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pages returns README.md and every page of docs/, by path from the root.
func pages(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	files, err := filepath.Glob("*.md")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range append(files, "../README.md") {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		out[f] = string(raw)
	}
	return out
}

// MaxReadme is the README's budget: a front door, read in five minutes.
const MaxReadme = 10_000

func TestReadmeIsShort(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	n := len([]rune(string(raw)))
	assert.LessOrEqual(t, n, MaxReadme, "README.md has %d characters; move detail into docs/", n)
}

var (
	// [text](target) and ![alt](target), not inside code.
	linkRE = regexp.MustCompile(`!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	// <img src="..."> in HTML blocks.
	imgRE     = regexp.MustCompile(`<img[^>]+src="([^"]+)"`)
	fenceRE   = regexp.MustCompile("(?ms)^```.*?^```")
	codeRE    = regexp.MustCompile("`[^`\n]*`")
	headingRE = regexp.MustCompile(`(?m)^#{1,6}\s+(.+?)\s*$`)
)

// prose is md without its code blocks and code spans.
func prose(md string) string {
	return codeRE.ReplaceAllString(fenceRE.ReplaceAllString(md, ""), "")
}

// anchor is GitHub's id of a heading: lower case, punctuation dropped,
// spaces as dashes.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ' || r == '-':
			b.WriteRune('-')
		case r == '_' || ('a' <= r && r <= 'z') || ('0' <= r && r <= '9') || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestEveryLinkAndImageResolvesInsideTheRepository(t *testing.T) {
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	all := pages(t)
	checked := 0
	for page, md := range all {
		text := prose(md)
		var targets []string
		for _, m := range linkRE.FindAllStringSubmatch(text, -1) {
			targets = append(targets, m[1])
		}
		for _, m := range imgRE.FindAllStringSubmatch(md, -1) {
			targets = append(targets, m[1])
		}
		for _, target := range targets {
			checked++
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") || strings.HasPrefix(target, "//") {
				t.Errorf("%s links outside the repository: %s", page, target)
				continue
			}
			file, frag, _ := strings.Cut(target, "#")
			path := page
			if file != "" {
				path = filepath.Join(filepath.Dir(page), file)
			}
			abs, err := filepath.Abs(path)
			require.NoError(t, err)
			if !strings.HasPrefix(abs, root+string(filepath.Separator)) && abs != root {
				t.Errorf("%s: %s points outside the repository", page, target)
				continue
			}
			if _, err := os.Stat(abs); err != nil {
				t.Errorf("%s: %s does not exist", page, target)
				continue
			}
			if frag != "" && strings.HasSuffix(path, ".md") {
				raw, err := os.ReadFile(abs)
				require.NoError(t, err)
				var ids []string
				for _, h := range headingRE.FindAllStringSubmatch(fenceRE.ReplaceAllString(string(raw), ""), -1) {
					ids = append(ids, anchor(h[1]))
				}
				assert.Contains(t, ids, frag, "%s: %s names no heading of %s", page, target, file)
			}
		}
	}
	assert.Positive(t, checked, "the pages link to each other")
}

func TestTheReadmeIndexesEveryPage(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	files, err := filepath.Glob("*.md")
	require.NoError(t, err)
	for _, f := range files {
		assert.Contains(t, string(readme), "(docs/"+f+")", "README.md's docs index links %s", f)
	}
}

var makeRE = regexp.MustCompile("`make ([a-z][a-z0-9-]*)")

func TestEveryMakeTargetNamedExists(t *testing.T) {
	targets := map[string][]string{}
	for page, md := range pages(t) {
		for _, m := range makeRE.FindAllStringSubmatch(md, -1) {
			targets[m[1]] = append(targets[m[1]], page)
		}
		for _, block := range fenceRE.FindAllString(md, -1) {
			for _, m := range regexp.MustCompile(`(?m)^\s*(?:\$ )?make ([a-z][a-z0-9-]*)`).FindAllStringSubmatch(block, -1) {
				targets[m[1]] = append(targets[m[1]], page)
			}
		}
	}
	require.NotEmpty(t, targets)
	names := make([]string, 0, len(targets))
	for k := range targets {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, name := range names {
		cmd := exec.Command("make", "-n", "--no-print-directory", name)
		cmd.Dir = ".."
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Errorf("make %s (named in %s) is not a target: %v: %s", name, strings.Join(slices.Compact(targets[name]), ", "), err, stderr.String())
		}
	}
}

// User docs state what is true now; the history of how it got so lives in
// bench/changes.md and the commit log.
func TestNoLabNotesInUserDocs(t *testing.T) {
	for page, md := range pages(t) {
		for _, phrase := range []string{"../shared", "the issue", "this VM", "these machines", "earlier session"} {
			if strings.Contains(strings.ToLower(md), strings.ToLower(phrase)) {
				t.Errorf("%s says %q: user docs state what is true now", page, phrase)
			}
		}
		for _, m := range regexp.MustCompile(`(?i)\bruns? \d+\b`).FindAllString(prose(md), -1) {
			t.Errorf("%s: run numbering %q belongs in bench/changes.md", page, m)
		}
	}
}

func TestAnchorsAreGitHubs(t *testing.T) {
	for heading, want := range map[string]string{
		"Trust boundaries":          "trust-boundaries",
		"A function in 20 lines":    "a-function-in-20-lines",
		"`make run`, `make test`":   "make-run-make-test",
		"What it does (and why)":    "what-it-does-and-why",
		"Write a function: 3 steps": "write-a-function-3-steps",
	} {
		assert.Equal(t, want, anchor(heading), fmt.Sprintf("%q", heading))
	}
}
