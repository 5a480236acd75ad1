package kubenode

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readTar returns a tar's regular files and directories by name.
func readTar(t *testing.T, r io.Reader) (files map[string][]byte, modes map[string]int64) {
	t.Helper()
	files, modes = map[string][]byte{}, map[string]int64{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, modes
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		files[h.Name], modes[h.Name] = b, h.Mode
	}
}

func TestWriteArchiveIsADockerArchiveContainerdCanImport(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "app")
	require.NoError(t, os.WriteFile(bin, []byte("#!binary"), 0o755))
	link := filepath.Join(dir, "lib.so")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "lib.so.1"), []byte("library"), 0o644))
	require.NoError(t, os.Symlink("lib.so.1", link))

	im := Image{Tag: "local/app:1", Files: map[string]string{"/app": bin, "/usr/lib/lib.so": link}, Entrypoint: []string{"/app"}, Cmd: []string{"serve"}}
	archive := filepath.Join(dir, "app.tar")
	require.NoError(t, im.WriteArchive(archive))

	f, err := os.Open(archive)
	require.NoError(t, err)
	defer f.Close()
	outer, _ := readTar(t, f)

	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	require.NoError(t, json.Unmarshal(outer["manifest.json"], &manifest))
	require.Len(t, manifest, 1)
	assert.Equal(t, []string{"local/app:1"}, manifest[0].RepoTags)
	require.Equal(t, []string{"layer.tar"}, manifest[0].Layers)

	var config struct {
		Architecture, OS string
		Config           struct {
			Entrypoint, Cmd []string
			User            string
		}
		RootFS struct {
			Type    string
			DiffIDs []string `json:"diff_ids"`
		}
	}
	require.NoError(t, json.Unmarshal(outer[manifest[0].Config], &config))
	assert.Equal(t, "linux", config.OS)
	assert.Equal(t, []string{"/app"}, config.Config.Entrypoint)
	assert.Equal(t, []string{"serve"}, config.Config.Cmd)
	assert.Equal(t, "65532:65532", config.Config.User, "non-root by default, numeric for runAsNonRoot")
	layer := outer["layer.tar"]
	sum := sha256.Sum256(layer)
	assert.Equal(t, []string{"sha256:" + hex.EncodeToString(sum[:])}, config.RootFS.DiffIDs, "the diff id is the layer's digest")
	configSum := sha256.Sum256(outer[manifest[0].Config])
	assert.Equal(t, hex.EncodeToString(configSum[:])+".json", manifest[0].Config)

	files, modes := readTar(t, bytes.NewReader(layer))
	assert.Equal(t, "#!binary", string(files["app"]))
	assert.Equal(t, int64(0o755), modes["app"], "executable bits kept")
	assert.Equal(t, "library", string(files["usr/lib/lib.so"]), "a symbolic link is copied as the file it names")
	assert.Contains(t, files, "usr/", "parent directories are in the layer")
	assert.Contains(t, files, "usr/lib/")
}

func TestWithLibrariesAddsWhatLddLists(t *testing.T) {
	out := "\tlinux-vdso.so.1 (0x00007ffc)\n" +
		"\tlibresolv.so.2 => /lib/x86_64-linux-gnu/libresolv.so.2 (0x00007f1)\n" +
		"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2)\n" +
		"\t/lib64/ld-linux-x86-64.so.2 (0x00007f3)\n"
	var got []string
	for _, m := range lddPath.FindAllStringSubmatch(out, -1) {
		got = append(got, m[1])
	}
	assert.Equal(t, []string{"/lib/x86_64-linux-gnu/libresolv.so.2", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}, got)

	sh, err := Image{Files: map[string]string{}}.WithLibraries("/bin/sh")
	require.NoError(t, err)
	assert.Contains(t, sh.Files, "/lib64/ld-linux-x86-64.so.2", "a dynamic binary brings its loader")
}
