package launch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "components"), 0o755))
	p := filepath.Join(dir, "dapr.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}

const valid = `version: 1
common:
  resourcesPath: ./components
  env:
    LOG_LEVEL: debug
    FUNCTIONS: order
apps:
- appID: order-service
  appDirPath: .
  appPort: 3000
  daprHTTPPort: 3500
  daprGRPCPort: 50001
  command: ["bin/shop"]
  env:
    FUNCTIONS: order,inventory
`

func TestLoadValidFile(t *testing.T) {
	f, err := Load(writeFile(t, valid))
	require.NoError(t, err)
	require.Len(t, f.Apps, 1)
	env := strings.Join(f.env(f.Apps[0]), "\n")
	assert.Contains(t, env, "FUNCTIONS=order,inventory", "the app's env wins over common")
	assert.Contains(t, env, "LOG_LEVEL=debug")
	assert.Contains(t, env, "APP_PORT=3000")
	assert.Contains(t, env, "DAPR_GRPC_PORT=50001")
	args := strings.Join(f.daprdArgs(f.Apps[0], "/tmp/no-exporters.yaml"), " ")
	assert.Contains(t, args, "--app-id order-service")
	assert.Contains(t, args, "--resources-path "+filepath.Join(f.dir, "components"))
	assert.Contains(t, args, "--enable-metrics=false", "no metrics port given: metrics off so daprds do not collide on 9090")
	assert.Contains(t, args, "--config /tmp/no-exporters.yaml", "no metrics port and no config: daprd records no metrics and samples no traces either")
	assert.NotContains(t, args, "--enable-profiling")
}

func TestProfilingFlags(t *testing.T) {
	f, err := Load(writeFile(t, strings.Replace(valid, "appPort: 3000", "appPort: 3000\n  enableProfiling: true\n  profilePort: 7701", 1)))
	require.NoError(t, err)
	args := strings.Join(f.daprdArgs(f.Apps[0], ""), " ")
	assert.Contains(t, args, "--enable-profiling --profile-port 7701")
}

func TestLoadErrorsNameFileAndField(t *testing.T) {
	cases := map[string]struct{ body, want string }{
		"unknown field":  {strings.Replace(valid, "appPort: 3000", "appPrt: 3000", 1), `unknown field "appPrt" in apps[]`},
		"unknown common": {strings.Replace(valid, "  env:\n    LOG_LEVEL", "  envv:\n    LOG_LEVEL", 1), `unknown field "envv" in common`},
		"version":        {strings.Replace(valid, "version: 1", "version: 2", 1), "version: must be 1"},
		"bad app id":     {strings.Replace(valid, "appID: order-service", "appID: Order_Service", 1), "apps[0].appID"},
		"no command":     {strings.Replace(valid, `  command: ["bin/shop"]`+"\n", "", 1), "apps[0].command"},
		"port reuse":     {strings.Replace(valid, "daprGRPCPort: 50001", "daprGRPCPort: 3500", 1), "port 3500 already used"},
		"protocol":       {strings.Replace(valid, "appPort: 3000", "appPort: 3000\n  appProtocol: tcp", 1), "apps[0].appProtocol"},
		"resources":      {strings.Replace(valid, "./components", "./nowhere", 1), "is not a directory"},
		"profiling port": {strings.Replace(valid, "appPort: 3000", "appPort: 3000\n  enableProfiling: true", 1), "apps[0].profilePort"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p := writeFile(t, c.body)
			_, err := Load(p)
			require.Error(t, err)
			assert.Contains(t, err.Error(), p, "the error names the file")
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

func TestRepositoryRunFilesLoad(t *testing.T) {
	files, err := filepath.Glob("../../deploy/dapr*.yaml")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 4)
	for _, p := range files {
		_, err := Load(p)
		assert.NoError(t, err, p)
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"../../deploy/dapr.yaml", "../../deploy/dapr-embedded.yaml", "../../deploy/dapr-postgres.yaml"} {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte("version: 1\napps:\n- appID: a\n  appPort: -1\n"))
	f.Add([]byte("apps: [\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		file, err := Parse("fuzz.yaml", raw)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("an error must name the file: %v", err)
			}
			return
		}
		for _, a := range file.Apps {
			if !appIDPattern.MatchString(a.AppID) {
				t.Fatalf("accepted app-id %q", a.AppID)
			}
		}
	})
}

func TestNoExportersConfigOnlyWithoutMetricsPortAndConfig(t *testing.T) {
	withPort, err := Load(writeFile(t, strings.Replace(valid, "appPort: 3000", "appPort: 3000\n  metricsPort: 9090", 1)))
	require.NoError(t, err)
	args := strings.Join(withPort.daprdArgs(withPort.Apps[0], "/tmp/no-exporters.yaml"), " ")
	assert.Contains(t, args, "--metrics-port 9090")
	assert.NotContains(t, args, "no-exporters.yaml", "metrics asked for: daprd's default configuration records them")

	p := writeFile(t, strings.Replace(valid, "appPort: 3000", "appPort: 3000\n  configFilePath: ./my-config.yaml", 1))
	withConfig, err := Load(p)
	require.NoError(t, err)
	args = strings.Join(withConfig.daprdArgs(withConfig.Apps[0], "/tmp/no-exporters.yaml"), " ")
	assert.Contains(t, args, "--config /tmp/no-exporters.yaml --config "+filepath.Join(filepath.Dir(p), "my-config.yaml"),
		"without a metrics port nothing is exported, and the app's own configuration comes last, so it wins where both speak")
}

func TestEverythingListensOnLoopbackUnlessTheFileSaysOtherwise(t *testing.T) {
	f, err := Load(writeFile(t, strings.Replace(valid, "appPort: 3000", "appPort: 3000\n  metricsPort: 9090", 1)))
	require.NoError(t, err)
	args := strings.Join(f.daprdArgs(f.Apps[0], ""), " ")
	assert.Contains(t, args, "--dapr-listen-addresses 127.0.0.1")
	assert.Contains(t, args, "--dapr-internal-grpc-listen-address 127.0.0.1")
	assert.Contains(t, args, "--metrics-listen-address 127.0.0.1")
	assert.Contains(t, daprdEnv("", f.listenAddress(f.Apps[0]), nil), "DAPR_HOST_IP=127.0.0.1", "name resolution announces where the internal port listens")
	assert.Contains(t, f.env(f.Apps[0]), "LISTEN_ADDRESS=127.0.0.1", "the app listens on loopback too")

	open, err := Load(writeFile(t, strings.Replace(valid, "appPort: 3000", "appPort: 3000\n  listenAddress: 0.0.0.0", 1)))
	require.NoError(t, err)
	assert.Contains(t, strings.Join(open.daprdArgs(open.Apps[0], ""), " "), "--dapr-listen-addresses 0.0.0.0")
	assert.NotContains(t, strings.Join(daprdEnv("", "0.0.0.0", nil), " "), "DAPR_HOST_IP=0.0.0.0", "daprd finds its own address to announce")
	assert.Contains(t, open.env(open.Apps[0]), "DAPR_HOST=127.0.0.1", "the app reaches its daprd on loopback")

	host, err := Load(writeFile(t, strings.Replace(valid, "appPort: 3000", "appPort: 3000\n  listenAddress: 198.18.0.11", 1)))
	require.NoError(t, err)
	assert.Contains(t, strings.Join(host.daprdArgs(host.Apps[0], ""), " "), "--app-channel-address 198.18.0.11", "daprd calls the app where it listens")
	assert.Contains(t, host.env(host.Apps[0]), "DAPR_HOST=198.18.0.11", "and the app calls daprd where it listens")

	_, err = Load(writeFile(t, strings.Replace(valid, "appPort: 3000", "appPort: 3000\n  listenAddress: localhost", 1)))
	require.ErrorContains(t, err, "listenAddress")
}

func TestEveryAppOfARunSharesOneInternalToken(t *testing.T) {
	f, err := Load(writeFile(t, valid))
	require.NoError(t, err)
	token := f.InternalToken()
	require.Len(t, token, 64)
	assert.Equal(t, token, f.InternalToken(), "chosen once per run")
	for _, a := range f.Apps {
		assert.Contains(t, f.env(a), "INTERNAL_TOKEN="+token)
		assert.Contains(t, f.env(a), "INTERNAL_APP_IDS=order-service", "the credential goes to the run's apps")
	}
	_, err = Load(writeFile(t, strings.Replace(valid, "    FUNCTIONS: order,inventory\n", "    FUNCTIONS: order,inventory\n    INTERNAL_TOKEN: mine\n", 1)))
	require.ErrorContains(t, err, "every app of a run shares one internal credential")
	g, err := Load(writeFile(t, valid))
	require.NoError(t, err)
	assert.NotEqual(t, token, g.InternalToken(), "each run draws its own")
}

func TestDaprdGetsItsOwnGOGC(t *testing.T) {
	t.Setenv("GOGC", "50") // the launcher's, meant for the apps
	gogc := func(env []string) []string {
		var out []string
		for _, kv := range env {
			if strings.HasPrefix(kv, "GOGC=") {
				out = append(out, kv)
			}
		}
		return out
	}
	env := daprdEnv("", "127.0.0.1", []string{"APP_API_TOKEN=t"})
	assert.Equal(t, []string{"GOGC=" + DefaultDaprdGOGC}, gogc(env), "the default, once, in place of the launcher's")
	assert.Equal(t, "APP_API_TOKEN=t", env[len(env)-1])
	assert.Equal(t, []string{"GOGC=100"}, gogc(daprdEnv("100", "127.0.0.1", nil)), "DaprdGOGC wins")
}
