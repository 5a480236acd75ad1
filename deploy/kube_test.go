package deploy

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/internal/scaffold"
)

// kubeBin is where `make kube-apiserver` builds kube-apiserver and kubectl.
const kubeBin = "../bin/kube-1.34.2"

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs a server process for the test's length; its output is logged
// if the test fails.
func start(t *testing.T, name string, args ...string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start(), "start %s", name)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		if t.Failed() {
			tail := out.String()
			if len(tail) > 4000 {
				tail = tail[len(tail)-4000:]
			}
			t.Logf("%s output (end):\n%s", filepath.Base(name), tail)
		}
	})
}

// apiServer is a kube-apiserver on loopback, on a private etcd, reached by
// kubectl with an admin token.
type apiServer struct{ kubeconfig string }

func startAPIServer(t *testing.T) *apiServer {
	t.Helper()
	for _, b := range []string{"kube-apiserver", "kubectl"} {
		_, err := os.Stat(filepath.Join(kubeBin, b))
		require.NoError(t, err, "%s is missing: run `make kube-apiserver`", b)
	}
	etcd, err := exec.LookPath("etcd")
	require.NoError(t, err, "etcd is missing: install Debian's etcd-server (.ci/run does)")
	dir := t.TempDir()

	client, peer := freePort(t), freePort(t)
	start(t, etcd, "--data-dir", filepath.Join(dir, "etcd"), "--name", "test",
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", client), "--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", client),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer), "--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer),
		"--initial-cluster", fmt.Sprintf("test=http://127.0.0.1:%d", peer))

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, 0o600))
		return p
	}
	saKey := write("sa.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	saPub := write("sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	token := rand.Text()
	tokens := write("tokens.csv", []byte(token+",admin,admin,system:masters\n"))

	port := freePort(t)
	start(t, filepath.Join(kubeBin, "kube-apiserver"),
		"--etcd-servers", fmt.Sprintf("http://127.0.0.1:%d", client),
		"--bind-address", "127.0.0.1", "--secure-port", fmt.Sprint(port), "--cert-dir", filepath.Join(dir, "certs"),
		"--advertise-address", "127.0.0.1", "--service-cluster-ip-range", "10.96.0.0/16",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", saPub, "--service-account-signing-key-file", saKey,
		"--token-auth-file", tokens, "--authorization-mode", "RBAC")

	s := &apiServer{kubeconfig: write("kubeconfig", fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:%d
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: %s
contexts:
- name: test
  context: {cluster: test, user: admin, namespace: default}
current-context: test
`, port, token))}
	require.Eventually(t, func() bool {
		_, err := s.kubectl("get", "--raw", "/readyz")
		return err == nil
	}, 90*time.Second, 500*time.Millisecond, "kube-apiserver ready")
	return s
}

// kubectl runs kubectl against the server and returns its output.
func (s *apiServer) kubectl(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(kubeBin, "kubectl"), append([]string{"--kubeconfig", s.kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// daprCRDs is the directory of Dapr's CRDs in the pinned dapr module.
func daprCRDs(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", "github.com/dapr/dapr")
	cmd.Dir = "daprd" // the module that pins it
	out, err := cmd.Output()
	require.NoError(t, err, "locate the pinned dapr module")
	var m struct{ Dir string }
	require.NoError(t, json.Unmarshal(out, &m))
	dir := filepath.Join(m.Dir, "charts", "dapr", "crds")
	require.DirExists(t, dir)
	return dir
}

// yamlFiles lists the .yaml files of dirs.
func yamlFiles(t *testing.T, dirs ...string) []string {
	t.Helper()
	var out []string
	for _, d := range dirs {
		files, err := filepath.Glob(filepath.Join(d, "*.yaml"))
		require.NoError(t, err)
		require.NotEmpty(t, files, d)
		out = append(out, files...)
	}
	return out
}

// Every manifest and every Dapr resource this repository ships, and what
// `shop new` writes, are accepted by a real kube-apiserver that knows
// Dapr's CRDs: no field of ours is one Kubernetes or Dapr does not have.
func TestEveryManifestAndDaprResourceOnARealAPIServer(t *testing.T) {
	s := startAPIServer(t)
	out, err := s.kubectl("apply", "--server-side", "-f", daprCRDs(t))
	require.NoError(t, err, out)
	out, err = s.kubectl("wait", "--for", "condition=established", "crd", "--all", "--timeout", "60s")
	require.NoError(t, err, out)

	// A new function's files, as shop new writes them, in a copy of what it reads.
	root := t.TempDir()
	for _, dir := range []string{"../cmd/shop", "../deploy", "../components", "../functions"} {
		require.NoError(t, os.CopyFS(filepath.Join(root, strings.TrimPrefix(dir, "../")), os.DirFS(dir)))
	}
	files, err := scaffold.Plan(root, scaffold.Spec{Name: "kubecheck", Topics: []string{"pubsub/orders"}, Crons: []string{"@every 1m"}, Invoke: []string{"POST /quote"}})
	require.NoError(t, err)
	require.NoError(t, scaffold.Apply(root, files))

	var all []string
	all = append(all, yamlFiles(t, "k8s", "config", "config/hosts")...)
	all = append(all, yamlFiles(t, "../components/embedded", "../components/redis", "../components/postgres-rabbitmq",
		"../components/email-files", "../components/email-smtp")...)
	all = append(all, filepath.Join(root, "deploy", "k8s", "kubecheck.yaml"), filepath.Join(root, "deploy", "config", "kubecheck.yaml"),
		filepath.Join(root, "deploy", "config", "hosts", "kubecheck.yaml"))
	for _, f := range all {
		out, err := s.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", f)
		require.NoError(t, err, "%s:\n%s", f, out)
		require.Contains(t, out, "(server dry run)", f)
	}

	// And the server does refuse what is not a field, so the above proves something.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte(`apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: bad
spec:
  policies:
    retries:
      eventRetry:
        policy: exponential
        initialInterval: 200ms
`), 0o644))
	out, err = s.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", bad)
	require.Error(t, err, "an unknown field is refused: %s", out)
	require.Contains(t, out, "initialInterval")
}
