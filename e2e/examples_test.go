package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/daprfn/shop/internal/daprtest"
	"github.com/daprfn/shop/internal/launch"
)

// launchExample builds examples/NAME and starts its dapr.yaml with the
// launcher, on free ports and a unique app-id. It returns the address of
// the example's sidecar HTTP port and its app-id.
func launchExample(t *testing.T, name string) (url, appID string) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "examples", name))
	require.NoError(t, err)
	bin := filepath.Join(t.TempDir(), name)
	inDir(t, dir, []string{"CGO_ENABLED=0"}, "go", "build", "-o", bin, ".")
	f, err := launch.Load(filepath.Join(dir, "dapr.yaml"))
	require.NoError(t, err)
	require.Len(t, f.Apps, 1)
	a := &f.Apps[0]
	a.AppID = daprtest.UniqueID(a.AppID)
	a.AppDirPath, a.Command = t.TempDir(), []string{bin}
	a.AppPort, a.DaprHTTPPort, a.DaprGRPCPort = daprtest.FreePort(t), daprtest.FreePort(t), daprtest.FreePort(t)
	a.ConfigFilePath = filepath.Join(dir, a.ConfigFilePath)
	a.ResourcesPath = filepath.Join(dir, a.ResourcesPath)
	run, err := yaml.Marshal(f)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "dapr.yaml")
	require.NoError(t, os.WriteFile(file, run, 0o644))
	l := startLauncher(t, file)
	t.Cleanup(func() { l.stop(t) })
	return "http://127.0.0.1:" + strconv.Itoa(a.DaprHTTPPort), a.AppID
}

func TestExampleHelloAnswersThroughItsSidecar(t *testing.T) {
	url, id := launchExample(t, "hello")
	status, body := post(t, url+"/v1.0/invoke/"+id+"/method/hello", `{"name": "Ada"}`)
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, `"Hello, Ada"`, body)
	status, body = post(t, url+"/v1.0/invoke/"+id+"/method/hello", `{}`)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.JSONEq(t, `{"error": "name is required", "code": "invalid_name"}`, body)
}

func TestExampleTickerPublishesAndCountsItsTicks(t *testing.T) {
	url, id := launchExample(t, "ticker")
	count := func() int64 {
		status, body := get(t, url+"/v1.0/invoke/"+id+"/method/count")
		require.Equal(t, http.StatusOK, status, body)
		var c struct{ Ticks int64 }
		require.NoError(t, json.Unmarshal([]byte(body), &c), body)
		return c.Ticks
	}
	require.Eventually(t, func() bool { return count() >= 2 }, 20*time.Second, 200*time.Millisecond, "the cron's ticks are published and delivered")
}
