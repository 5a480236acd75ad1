package kubenode

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// An Image is a container image of files taken from this machine: one
// layer, no shell, no package manager.
type Image struct {
	// Tag is the image's name, e.g. local/shop:kube. containerd stores it
	// under docker.io/, as a registry would.
	Tag string
	// Files maps a path in the image to the file on this machine it copies.
	Files map[string]string
	// Entrypoint and Cmd are the image's defaults; a pod's command and args
	// replace them.
	Entrypoint, Cmd []string
	// User runs the image's process unless a pod says otherwise: numeric,
	// so that runAsNonRoot can check it. Default 65532:65532, as
	// distroless's nonroot (and Dapr's own images).
	User string
}

// WithLibraries adds the shared libraries a dynamically linked binary of
// the image loads (as ldd lists them), at the same paths. A static binary
// adds none.
func (im Image) WithLibraries(bin string) (Image, error) {
	out, err := exec.Command("ldd", bin).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "not a dynamic executable") {
			return im, nil
		}
		return im, fmt.Errorf("ldd %s: %v: %s", bin, err, out)
	}
	for _, m := range lddPath.FindAllStringSubmatch(string(out), -1) {
		im.Files[m[1]] = m[1]
	}
	return im, nil
}

// lddPath matches the absolute library paths of ldd's output, both
// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" and the loader's
// "/lib64/ld-linux-x86-64.so.2 (0x…)".
var lddPath = regexp.MustCompile(`(?m)(?:=> |^\s+)(/\S+) \(0x`)

// WriteArchive writes the image as a docker-archive tar (manifest.json, the
// image config and one layer), which `ctr images import` loads without a
// registry or a Docker engine.
func (im Image) WriteArchive(dst string) error {
	var layer bytes.Buffer
	if err := im.writeLayer(&layer); err != nil {
		return err
	}
	diffID := sha256.Sum256(layer.Bytes())
	user := im.User
	if user == "" {
		user = "65532:65532"
	}
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config": map[string]any{
			"Entrypoint": im.Entrypoint,
			"Cmd":        im.Cmd,
			"Env":        []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
			"User":       user,
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(diffID[:])}},
	})
	if err != nil {
		return err
	}
	configSum := sha256.Sum256(config)
	configName := hex.EncodeToString(configSum[:]) + ".json"
	manifest, err := json.Marshal([]map[string]any{{
		"Config": configName, "RepoTags": []string{im.Tag}, "Layers": []string{"layer.tar"},
	}})
	if err != nil {
		return err
	}

	tmp := dst + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	tw := tar.NewWriter(f)
	for _, e := range []struct {
		name string
		data []byte
	}{{configName, config}, {"layer.tar", layer.Bytes()}, {"manifest.json", manifest}} {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg}); err != nil {
			f.Close()
			return err
		}
		if _, err := tw.Write(e.data); err != nil {
			f.Close()
			return err
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// writeLayer writes the layer's tar: every file with its parent
// directories, owned by root, in a stable order.
func (im Image) writeLayer(w io.Writer) error {
	tw := tar.NewWriter(w)
	dsts := make([]string, 0, len(im.Files))
	for d := range im.Files {
		dsts = append(dsts, strings.TrimPrefix(path.Clean("/"+d), "/"))
	}
	sort.Strings(dsts)
	dirs := map[string]bool{}
	for _, d := range dsts {
		var parents []string
		for p := path.Dir(d); p != "." && !dirs[p]; p = path.Dir(p) {
			parents = append(parents, p)
			dirs[p] = true
		}
		for i := len(parents) - 1; i >= 0; i-- {
			if err := tw.WriteHeader(&tar.Header{Name: parents[i] + "/", Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
				return err
			}
		}
		src := im.Files["/"+d]
		if src == "" {
			src = im.Files[d]
		}
		if err := copyInto(tw, d, src); err != nil {
			return err
		}
	}
	return tw.Close()
}

// copyInto adds the file at src (symbolic links followed) to tw as name,
// keeping its permission bits.
func copyInto(tw *tar.Writer, name, src string) error {
	real, err := filepath.EvalSymlinks(src)
	if err != nil {
		return err
	}
	f, err := os.Open(real)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: int64(st.Mode().Perm()), Size: st.Size(), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}
