package daprtest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Component is a Dapr Component resource named name of type typ (e.g.
// "state.redis"), with metadata given as name, value pairs; each value is
// written as a quoted YAML string.
func Component(name, typ string, metadata ...string) string {
	if len(metadata)%2 != 0 {
		panic(fmt.Sprintf("daprtest.Component %s: metadata %q is not name, value pairs", name, metadata))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: %s\nspec:\n  type: %s\n  version: v1\n", name, typ)
	if len(metadata) > 0 {
		b.WriteString("  metadata:\n")
	}
	for i := 0; i < len(metadata); i += 2 {
		fmt.Fprintf(&b, "  - name: %s\n    value: %s\n", metadata[i], strconv.Quote(metadata[i+1]))
	}
	return b.String()
}

// TmpfsDir is /dev/shm when this process can write there, else the temp
// dir: the place for files a benchmark writes through a binding, since on a
// VM disk creating a file can cost more kernel time than the rest of the
// work measured, which would then measure the disk.
func TmpfsDir() string {
	if probe, err := os.MkdirTemp("/dev/shm", "daprtest-probe-"); err == nil {
		os.Remove(probe)
		return "/dev/shm"
	}
	return os.TempDir()
}
