//go:build kube

package e2e

// The shop on a one-node Kubernetes cluster built from source, with Dapr's
// own control plane from its Helm chart: `make test-kube` (root; about 4
// minutes once `make kube` has built everything).
// docs/kubernetes.md tells what it checks and how to reproduce it.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/internal/kubenode"
)

// The versions `make kube` built, which `make test-kube` passes on.
var (
	kubeVersion = envOr("KUBE_VERSION", "1.34.2")
	daprVersion = envOr("DAPR_VERSION", "1.18.2")
	helmVersion = envOr("HELM_VERSION", "v3.21.4")
)

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

const (
	// shopImage is the image the test's cluster runs the shop from; the
	// manifests of deploy/k8s are applied with theirs replaced by it.
	shopImage     = "docker.io/local/shop:kube"
	shippedImage  = "ghcr.io/daprfn/shop:latest"
	sidecarPort   = 3500
	orderApp      = "order-service"
	inventoryApp  = "inventory-service"
	notifyApp     = "notification-service"
	storefrontApp = "storefront"
)

// repo is the repository's root, from the e2e directory.
func repo(p ...string) string { return filepath.Join(append([]string{".."}, p...)...) }

func coreDNSVersion(t *testing.T) string {
	b, err := os.ReadFile(repo("deploy", "kube", "coredns-version"))
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}

// kubeImages writes the cluster's images, from what `make kube` built, and
// returns their archives.
func kubeImages(t *testing.T) []string {
	t.Helper()
	kubeBin := repo("bin", "kube-"+kubeVersion)
	daprBin := repo("bin", "dapr-"+daprVersion)
	images := []kubenode.Image{
		{Tag: "local/pause:3.10", Files: map[string]string{"/pause": filepath.Join(kubeBin, "pause")}, Entrypoint: []string{"/pause"}, User: "65535:65535"},
		{Tag: "local/shop:kube", Files: map[string]string{"/shop": repo("bin", "shop")}, Entrypoint: []string{"/shop"}, Cmd: []string{"serve"}},
		// No entrypoint: the injector gives the sidecar "/daprd" as its first argument.
		{Tag: "local/daprd:" + daprVersion, Files: map[string]string{"/daprd": repo("bin", "daprd-"+daprVersion, "daprd")}},
		{Tag: "local/sentry:" + daprVersion, Files: map[string]string{"/sentry": repo("bin", "sentry-"+daprVersion, "sentry")}, Entrypoint: []string{"/sentry"}},
		{Tag: "local/redis:kube", Files: map[string]string{"/usr/bin/redis-server": "/usr/bin/redis-server"}, Entrypoint: []string{"/usr/bin/redis-server"}},
		{Tag: "local/coredns:" + coreDNSVersion(t), Files: map[string]string{"/coredns": repo("bin", "coredns-"+coreDNSVersion(t), "coredns")}, Entrypoint: []string{"/coredns"}},
	}
	for _, c := range []string{"operator", "injector", "placement", "scheduler"} {
		images = append(images, kubenode.Image{Tag: "local/" + c + ":" + daprVersion, Files: map[string]string{"/" + c: filepath.Join(daprBin, c)}, Entrypoint: []string{"/" + c}})
	}
	dir := t.TempDir()
	var archives []string
	for _, im := range images {
		for _, src := range slices.Collect(maps.Values(im.Files)) {
			_, err := os.Stat(src)
			require.NoError(t, err, "%s: run `make kube`", src)
			im, err = im.WithLibraries(src)
			require.NoError(t, err)
		}
		a := filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(im.Tag)+".tar")
		require.NoError(t, im.WriteArchive(a), im.Tag)
		archives = append(archives, a)
	}
	return archives
}

// kubeShop is the shop on the node, and what the test keeps outside the
// cluster: PostgreSQL (the order archive) and the SMTP server.
type kubeShop struct {
	t       *testing.T
	node    *kubenode.Node
	mailAPI string
	db      string
	tokens  map[string]string // secret name -> value

	mu       sync.Mutex
	forwards map[string]*portForward // app -> its sidecar's current forward
}

func TestKube(t *testing.T) {
	require.Zero(t, os.Geteuid(), "the node needs root (namespaces, mounts, cgroups): run `make test-kube` as root")
	ctx := t.Context()
	archives := kubeImages(t)
	// Leases and holds of a deleted pod's order-service are settled by the
	// hold sweep (every 15 s) after HOLD_TTL (60 s), as the manifests set them.
	auditSettle = 3 * time.Minute

	require.NoError(t, os.RemoveAll(kubeArtifacts))
	require.NoError(t, os.MkdirAll(filepath.Join(kubeArtifacts, "deleted"), 0o755))
	started := time.Now()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	dir := filepath.Join(os.TempDir(), "shopkube")
	node, err := kubenode.Start(ctx, kubenode.Config{KubeBin: repo("bin", "kube-"+kubeVersion), Dir: dir, Log: log})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			keepKubeLogs(t, node)
		}
		node.Stop()
	})
	require.NoError(t, node.Import(ctx, archives...))
	t.Logf("node Ready with its images in %s", time.Since(started).Round(time.Second))

	s := &kubeShop{t: t, node: node, forwards: map[string]*portForward{}}
	s.outside()
	for _, step := range []struct {
		what string
		do   func()
	}{{"CoreDNS", s.clusterDNS}, {"Dapr's control plane", s.daprControlPlane}, {"the shop and Redis", s.deploy}} {
		began := time.Now()
		step.do()
		t.Logf("%s ready in %s", step.what, time.Since(began).Round(time.Second))
	}
	t.Logf("the shop is up on the node, %s after the start", time.Since(started).Round(time.Second))

	t.Run("SeedFlow", s.testSeedFlow)
	t.Run("AccessControl", s.testAccessControl)
	t.Run("LoadAudited", s.testLoad)
	t.Run("PodsDeletedUnderLoad", s.testPodsDeleted)
}

// kubeArtifacts keeps a failed run's logs; deleted/ holds the logs of the
// pods the test deleted, followed until they went.
var kubeArtifacts = filepath.Join("artifacts", "kube")

// keepKubeLogs copies the node's logs and every pod's to e2e/artifacts/kube.
func keepKubeLogs(t *testing.T, node *kubenode.Node) {
	out := kubeArtifacts
	_ = exec.Command("cp", "-r", node.Logs(), filepath.Join(out, "node")).Run()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pods, _ := node.Kubectl(ctx, "get", "pods", "-A", "-o", `jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{"\n"}{end}`)
	for _, p := range strings.Fields(pods) {
		ns, name, _ := strings.Cut(p, "/")
		logs, _ := node.Kubectl(ctx, "logs", "-n", ns, name, "--all-containers", "--prefix")
		_ = os.WriteFile(filepath.Join(out, ns+"_"+name+".log"), []byte(logs), 0o644)
	}
	desc, _ := node.Kubectl(ctx, "describe", "pods", "-A")
	_ = os.WriteFile(filepath.Join(out, "describe-pods.txt"), []byte(desc), 0o644)
	ev, _ := node.Kubectl(ctx, "get", "events", "-A", "--sort-by", ".lastTimestamp")
	_ = os.WriteFile(filepath.Join(out, "events.txt"), []byte(ev), 0o644)
	t.Logf("the node's and the pods' logs are in e2e/%s", out)
}

func (s *kubeShop) kubectl(args ...string) string {
	s.t.Helper()
	out, err := s.node.Kubectl(s.t.Context(), args...)
	require.NoError(s.t, err, "kubectl %s:\n%s", strings.Join(args, " "), out)
	return out
}

func (s *kubeShop) apply(manifest []byte, args ...string) {
	s.t.Helper()
	out, err := s.node.KubectlIn(s.t.Context(), manifest, append([]string{"apply", "-f", "-"}, args...)...)
	require.NoError(s.t, err, "kubectl apply:\n%s", out)
}

// waitRollout waits until every Deployment and StatefulSet of namespace
// ns has all its replicas ready.
func (s *kubeShop) waitRollout(ns string, within time.Duration) {
	s.t.Helper()
	for _, kind := range []string{"deployment", "statefulset"} {
		names := strings.Fields(s.kubectl("get", kind, "-n", ns, "-o", "jsonpath={.items[*].metadata.name}"))
		for _, n := range names {
			out, err := s.node.Kubectl(s.t.Context(), "rollout", "status", "-n", ns, kind+"/"+n, "--timeout", within.String())
			if err != nil {
				pods, _ := s.node.Kubectl(s.t.Context(), "get", "pods", "-A", "-o", "wide")
				require.NoError(s.t, err, "%s/%s: %s\n%s", ns, n, out, pods)
			}
		}
	}
}

// outside starts what the cluster reaches outside itself, on this
// machine's end of the node's link: an SMTP server (mailpit, reached as
// smtp.example.com, the host deploy/k8s/components.yaml names) and the
// machine's PostgreSQL, through a forwarder, with a database of the test's.
func (s *kubeShop) outside() {
	t := s.t
	api := startMailpitOn(t, kubenode.HostAddr+":587")
	s.mailAPI = api

	s.db = "shopkube"
	for _, q := range []string{"DROP DATABASE IF EXISTS " + s.db, "CREATE DATABASE " + s.db} {
		out, err := exec.Command("psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c", q).CombinedOutput()
		require.NoError(t, err, "%s: %s", q, out)
	}
	l, err := net.Listen("tcp", kubenode.HostAddr+":5432")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", "127.0.0.1:5432")
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
}

// clusterDNS runs CoreDNS, which Dapr's Kubernetes name resolution needs.
func (s *kubeShop) clusterDNS() {
	manifest, err := os.ReadFile(filepath.Join("testdata", "kube", "coredns.yaml"))
	require.NoError(s.t, err)
	manifest = []byte(strings.NewReplacer("COREDNS_VERSION", coreDNSVersion(s.t), "HOST_ADDR", kubenode.HostAddr, "DNS_ADDR", kubenode.DNSAddr).Replace(string(manifest)))
	s.apply(manifest)
	s.waitRollout("kube-system", 3*time.Minute)
}

// daprModule is the pinned dapr module's directory.
func daprModule(t *testing.T) string {
	cmd := exec.Command("go", "mod", "download", "-json", "github.com/dapr/dapr")
	cmd.Dir = repo("deploy", "daprd")
	out, err := cmd.Output()
	require.NoError(t, err)
	var m struct{ Dir string }
	require.NoError(t, json.Unmarshal(out, &m))
	return m.Dir
}

// daprChartValues set Dapr's chart for one node: one replica of each part,
// the images `make kube` built (local/<name>:1.18.2, never pulled), mTLS
// on. The shop uses no actors, workflows or jobs, so neither placement nor
// the scheduler runs (the scheduler is three etcd members on volumes a bare
// node cannot provision); the injector then gives the sidecars neither
// address.
var daprChartValues = []string{
	"global.registry=local", "global.tag=" + daprVersion,
	"global.imagePullPolicy=IfNotPresent", "dapr_sidecar_injector.sidecarImagePullPolicy=IfNotPresent",
	"global.ha.enabled=false", "global.mtls.enabled=true",
	"global.actors.enabled=false", "global.scheduler.enabled=false",
}

// daprControlPlane installs Dapr's control plane from the pinned module's
// own Helm chart, rendered by Helm, with the images `make kube` built.
func (s *kubeShop) daprControlPlane() {
	t := s.t
	chart := filepath.Join(daprModule(t), "charts", "dapr")
	s.kubectl("apply", "--server-side", "-f", filepath.Join(chart, "crds"))
	s.kubectl("wait", "--for", "condition=established", "crd", "--all", "--timeout", "60s")
	s.kubectl("create", "namespace", "dapr-system")
	args := []string{"template", "dapr", chart, "--namespace", "dapr-system"}
	for _, set := range daprChartValues {
		args = append(args, "--set", set)
	}
	out, err := exec.Command(repo("bin", "helm-"+helmVersion, "helm"), args...).Output()
	require.NoError(t, err, "helm template")
	s.apply(out) // every object of the chart names its namespace
	s.waitRollout("dapr-system", 5*time.Minute)
}

// deploy applies deploy/k8s as it ships, but for the shop's image, with the
// Secrets it names, and Redis.
func (s *kubeShop) deploy() {
	t := s.t
	s.tokens = map[string]string{
		"dapr-api-token": rand.Text(), "app-api-token": rand.Text(), "internal-token": rand.Text(),
	}
	for name, v := range s.tokens {
		key := "token"
		s.kubectl("create", "secret", "generic", name, "--from-literal="+key+"="+v)
	}
	s.tokens["redis-password"] = rand.Text()
	s.kubectl("create", "secret", "generic", "shop-secrets",
		"--from-literal=redis-password="+s.tokens["redis-password"],
		fmt.Sprintf("--from-literal=postgres-connection=host=%s port=5432 user=postgres dbname=%s sslmode=disable", kubenode.HostAddr, s.db),
		"--from-literal=smtp-user=", "--from-literal=smtp-password=")
	redis, err := os.ReadFile(filepath.Join("testdata", "kube", "redis.yaml"))
	require.NoError(t, err)
	s.apply(redis)
	s.waitRollout("default", 2*time.Minute)

	files, err := filepath.Glob(repo("deploy", "k8s", "*.yaml"))
	require.NoError(t, err)
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		all = append(all, "\n---\n"...)
		all = append(all, strings.ReplaceAll(string(b), shippedImage, shopImage)...)
	}
	require.Contains(t, string(all), shopImage)
	s.apply(all)
	s.waitRollout("default", 5*time.Minute)
	// Dapr's injector gave every pod of the shop its sidecar.
	for _, app := range []string{orderApp, inventoryApp, notifyApp, storefrontApp} {
		containers := s.kubectl("get", "pods", "-l", "app="+app, "-o", "jsonpath={.items[*].spec.containers[*].name}")
		require.Contains(t, containers, "daprd", "%s's pods have an injected sidecar", app)
	}
}

// readyPods lists the Ready, not terminating pods of app.
func (s *kubeShop) readyPods(app string) []string {
	pods, err := s.listReady(s.t.Context(), app)
	require.NoError(s.t, err)
	return pods
}

// listReady is readyPods for callers that handle the error.
func (s *kubeShop) listReady(ctx context.Context, app string) ([]string, error) {
	out, err := s.node.Kubectl(ctx, "get", "pods", "-l", "app="+app, "-o",
		`jsonpath={range .items[*]}{.metadata.name} {.metadata.deletionTimestamp} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
	if err != nil {
		return nil, fmt.Errorf("list %s's pods: %v: %s", app, err, out)
	}
	var pods []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[1] == "True" { // no deletionTimestamp
			pods = append(pods, f[0])
		}
	}
	return pods, nil
}

// portForward is `kubectl port-forward` to one pod's port, on loopback.
type portForward struct {
	pod  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

var forwarding = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) ->`)

func (s *kubeShop) portForward(pod string, port int) (*portForward, error) {
	cmd := exec.Command(filepath.Join(repo("bin", "kube-"+kubeVersion), "kubectl"), "--kubeconfig", s.node.Kubeconfig,
		"port-forward", "pod/"+pod, "--address", "127.0.0.1", ":"+strconv.Itoa(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	f := &portForward{pod: pod, cmd: cmd, done: make(chan struct{})}
	found := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := forwarding.FindStringSubmatch(sc.Text()); m != nil {
				p, _ := strconv.Atoi(m[1])
				select {
				case found <- p:
				default:
				}
			}
		}
		_ = cmd.Wait()
		close(f.done)
	}()
	select {
	case f.port = <-found:
		return f, nil
	case <-f.done:
		return nil, fmt.Errorf("port-forward to %s exited", pod)
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("port-forward to %s: no port in 30 s", pod)
	}
}

func (f *portForward) close() { _ = f.cmd.Process.Kill(); <-f.done }

func (f *portForward) alive() bool {
	select {
	case <-f.done:
		return false
	default:
		return true
	}
}

// sidecar returns the address of a forward to a Ready pod of app's sidecar
// HTTP port; a forward whose pod went away is replaced.
func (s *kubeShop) sidecar(app string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.forwards[app]; f != nil && f.alive() {
		return "127.0.0.1:" + strconv.Itoa(f.port), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		pods, _ := s.listReady(ctx, app)
		for _, pod := range pods {
			if fw, err := s.portForward(pod, sidecarPort); err == nil {
				s.forwards[app] = fw
				s.t.Cleanup(fw.close)
				return "127.0.0.1:" + strconv.Itoa(fw.port), nil
			}
		}
		time.Sleep(time.Second)
	}
	return "", fmt.Errorf("no Ready pod of %s to forward to", app)
}

// sidecarTransport sends each request to a sidecar of app, through a port
// forward, with the sidecar's API token.
type sidecarTransport struct {
	s   *kubeShop
	app string
	rt  http.RoundTripper
}

func (st sidecarTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	addr, err := st.s.sidecar(st.app)
	if err != nil {
		return nil, err
	}
	req = req.Clone(req.Context())
	req.URL.Scheme, req.URL.Host = "http", addr
	req.Header.Set("dapr-api-token", st.s.tokens["dapr-api-token"])
	resp, err := st.rt.RoundTrip(req)
	switch {
	case err != nil && req.Context().Err() == nil:
		st.s.dropForward(st.app, addr) // its pod may be gone: the next request forwards anew
	case err == nil && resp.StatusCode >= 500 && st.s.terminating(st.app, addr):
		// A deleted pod's sidecar keeps its API up while its app is gone
		// (block-shutdown-duration); an ingress would have left it already.
		st.s.dropForward(st.app, addr)
	}
	return resp, err
}

// terminating tells whether the pod app's forward at addr leads to is
// being deleted.
func (s *kubeShop) terminating(app, addr string) bool {
	s.mu.Lock()
	f := s.forwards[app]
	s.mu.Unlock()
	if f == nil || "127.0.0.1:"+strconv.Itoa(f.port) != addr {
		return false
	}
	out, err := s.node.Kubectl(context.Background(), "get", "pod", f.pod, "-o", "jsonpath={.metadata.deletionTimestamp}")
	return err != nil || out != ""
}

// dropForward closes app's forward if it is still the one at addr.
func (s *kubeShop) dropForward(app, addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.forwards[app]; f != nil && "127.0.0.1:"+strconv.Itoa(f.port) == addr {
		f.close()
		delete(s.forwards, app)
	}
}

func (s *kubeShop) client(app string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: sidecarTransport{s: s, app: app, rt: &http.Transport{MaxIdleConnsPerHost: 16}}}
}

// call sends a request through app's sidecar and returns the answer.
func (s *kubeShop) call(t *testing.T, app, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://sidecar"+path, strings.NewReader(body))
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client(app).Do(req)
	// A read is tried again through a new forward when a pod went away.
	for try := 1; err != nil && method == http.MethodGet && try < 5; try++ {
		time.Sleep(time.Second)
		req, _ = http.NewRequest(method, "http://sidecar"+path, nil)
		resp, err = s.client(app).Do(req)
	}
	require.NoError(t, err, "%s %s through %s's sidecar", method, path, app)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// The seed's two curl lines, through the order-service's sidecar (with the
// API token the manifests require), and the seed's inventory.
func (s *kubeShop) testSeedFlow(t *testing.T) {
	status, body := s.call(t, orderApp, http.MethodPost, "/v1.0/invoke/order-service/method/orders",
		`{"productId": "product-1", "quantity": 2, "customerEmail": "customer@example.com"}`)
	require.Equal(t, http.StatusOK, status, body)
	id := decodeOrderID(t, body)
	status, body = s.call(t, orderApp, http.MethodGet, "/v1.0/invoke/order-service/method/orders/"+id, "")
	require.Equal(t, http.StatusOK, status, body)
	var order struct {
		ID, ProductID, CustomerEmail string
		Quantity                     int
	}
	require.NoError(t, json.Unmarshal([]byte(body), &order), body)
	assert.Equal(t, id, order.ID)
	assert.Equal(t, "product-1", order.ProductID)
	assert.Equal(t, 2, order.Quantity)

	require.Eventually(t, func() bool { return s.emails(t)[id] == 1 }, time.Minute, 500*time.Millisecond,
		"the confirmation went out over SMTP to the server outside the cluster")
	require.Eventually(t, func() bool { return s.orderFiles(t)[id] }, 30*time.Second, 500*time.Millisecond,
		"the order's row in PostgreSQL outside the cluster")
	status, body = s.call(t, storefrontApp, http.MethodGet, "/v1.0/invoke/inventory-service/method/inventory", "")
	require.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, `"Laptop"`)
}

// The sidecars run with mTLS from sentry and the shipped access-control
// policies and API allowlists.
func (s *kubeShop) testAccessControl(t *testing.T) {
	// A call the design has: the storefront reads the stock.
	status, body := s.call(t, storefrontApp, http.MethodGet, "/v1.0/invoke/inventory-service/method/inventory", "")
	assert.Equal(t, http.StatusOK, status, body)
	// One it does not: the storefront may not restock; the inventory's
	// sidecar refuses it, from the caller's identity in its certificate.
	status, body = s.call(t, storefrontApp, http.MethodPost, "/v1.0/invoke/inventory-service/method/restock", "{}")
	assert.Equal(t, http.StatusForbidden, status, "storefront -> inventory /restock: %s", body)
	assert.Contains(t, body, "access control policy has denied access to id: spiffe://public/ns/default/storefront", "refused by the sidecar")
	// Dapr matches a policy's operation as a path prefix: the storefront's
	// POST /orders lets POST /orders/lookup through the order's sidecar, and
	// the order app refuses its internal route without the internal token.
	status, body = s.call(t, storefrontApp, http.MethodPost, "/v1.0/invoke/order-service/method/orders/lookup", `{"ids":["x"]}`)
	assert.Equal(t, http.StatusForbidden, status, "storefront -> order /orders/lookup: %s", body)
	assert.Contains(t, body, "internal_route", "refused by the order app")
	// And what no policy names is refused by the sidecar.
	status, body = s.call(t, storefrontApp, http.MethodGet, "/v1.0/invoke/notification-service/method/orders", "")
	assert.Equal(t, http.StatusForbidden, status, "storefront -> notification /orders: %s", body)
	assert.Contains(t, body, "access control policy has denied", "refused by the sidecar")
	// The storefront's sidecar has no state API.
	status, body = s.call(t, storefrontApp, http.MethodGet, "/v1.0/state/statestore/stock-product-1", "")
	assert.Contains(t, []int{http.StatusForbidden, http.StatusNotFound}, status, "storefront's sidecar state API: %s", body)
	// A sidecar's API without its token.
	addr, err := s.sidecar(orderApp)
	require.NoError(t, err)
	resp, err := http.Get("http://" + addr + "/v1.0/invoke/order-service/method/orders/none")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a sidecar's API without the token")

	// An outsider in the cluster's network: a pod's daprd internal gRPC
	// port (50002) answers only TLS clients with a certificate from sentry.
	ip := s.kubectl("get", "pods", "-l", "app=inventory-service", "-o", "jsonpath={.items[0].status.podIP}")
	err = outsiderTLS(net.JoinHostPort(ip, "50002"))
	require.Error(t, err, "a TLS client without a certificate from sentry is refused")
	assert.Contains(t, err.Error(), "remote error: tls", "refused by daprd's TLS, not by the network")

	// And an app's own port answers only its sidecar (APP_API_TOKEN).
	orderIP := s.kubectl("get", "pods", "-l", "app=order-service", "-o", "jsonpath={.items[0].status.podIP}")
	resp, err = http.Post("http://"+net.JoinHostPort(orderIP, "3000")+"/orders", "application/json",
		strings.NewReader(`{"productId": "product-2", "quantity": 1, "customerEmail": "outsider@example.com"}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the order app's port without the app token")
}

// emails counts the confirmations the SMTP server received, by order id.
func (s *kubeShop) emails(t *testing.T) map[string]int {
	t.Helper()
	resp, err := http.Get(s.mailAPI + "/api/v1/messages?limit=1000000")
	require.NoError(t, err)
	defer resp.Body.Close()
	var got mailpitMessages
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	out := map[string]int{}
	for _, m := range got.Messages {
		if id, ok := strings.CutPrefix(m.Subject, "Order confirmation "); ok {
			out[id]++
		}
	}
	return out
}

// orderFiles is every order row in PostgreSQL.
func (s *kubeShop) orderFiles(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command("psql", "-h", "127.0.0.1", "-U", "postgres", "-d", s.db, "-tAc", "SELECT id FROM orders").CombinedOutput()
	if err != nil && strings.Contains(string(out), `relation "orders" does not exist`) {
		return map[string]bool{}
	}
	require.NoError(t, err, "%s", out)
	ids := map[string]bool{}
	for _, id := range strings.Fields(string(out)) {
		ids[id] = true
	}
	return ids
}

// stock reads product's stock as the storefront does. A read that reaches
// a replica just deleted fails, and is tried again.
func (s *kubeShop) stock(t *testing.T, product string) int {
	t.Helper()
	status, body := s.call(t, storefrontApp, http.MethodGet, "/v1.0/invoke/inventory-service/method/inventory", "")
	for try := 1; status != http.StatusOK && try < 10; try++ {
		time.Sleep(time.Second)
		status, body = s.call(t, storefrontApp, http.MethodGet, "/v1.0/invoke/inventory-service/method/inventory", "")
	}
	require.Equal(t, http.StatusOK, status, body)
	var inv map[string]struct{ Stock int }
	require.NoError(t, json.Unmarshal([]byte(body), &inv), body)
	return inv[product].Stock
}

func (s *kubeShop) getOrder(t *testing.T, id string) (int, string) {
	return s.call(t, orderApp, http.MethodGet, "/v1.0/invoke/order-service/method/orders/"+id, "")
}

// stockUp sets product-1's stock to faultStock in Redis, as the audit
// counts from: the shipped catalog has 10 laptops, which the restock
// binding tops up every minute; above that level it adds nothing.
func (s *kubeShop) stockUp(t *testing.T) {
	ip := s.kubectl("get", "service", "redis-master", "-o", "jsonpath={.spec.clusterIP}")
	rc := dialRedis(t, ip+":6379")
	defer rc.Close()
	_, err := rc.do("AUTH", s.tokens["redis-password"])
	require.NoError(t, err)
	key := "inventory-service||stock-product-1"
	var data any
	// Leases of earlier orders are settled once their life is over.
	require.Eventually(t, func() bool {
		data, err = rc.do("HGET", key, "data")
		require.NoError(t, err)
		return !strings.Contains(fmt.Sprint(data), `"leases"`) && !strings.Contains(fmt.Sprint(data), `"holds"`)
	}, 3*time.Minute, time.Second, "no lease or hold is out: %v", data)
	var p map[string]any
	require.NoError(t, json.Unmarshal([]byte(fmt.Sprint(data)), &p), "%v", data)
	require.Empty(t, p["holds"], "no order is in flight")
	p["stock"] = faultStock
	b, err := json.Marshal(p)
	require.NoError(t, err)
	_, err = rc.do("HSET", key, "data", string(b))
	require.NoError(t, err)
	_, err = rc.do("HINCRBY", key, "version", "1")
	require.NoError(t, err)
	require.Equal(t, faultStock, s.stock(t, "product-1"))
}

func (s *kubeShop) load(workers, max int) *orderLoad {
	return startLoadTo(s.client(orderApp), "http://sidecar/v1.0/invoke/order-service/method/orders",
		loadOptions{workers: workers, max: max, pause: 20 * time.Millisecond})
}

// A bounded load through the order-service's sidecar, then the audit:
// every order answered 200 is stored and emailed once, the stock exact.
func (s *kubeShop) testLoad(t *testing.T) {
	s.stockUp(t)
	before := s.orderFiles(t)
	answers := s.load(8, 1000).sent()
	r := audit(t, s.since(before), answers)
	logFailures(t, answers)
	assert.Zero(t, r.failed, "no fault, no failed order")
}

// One pod of each function deleted under load, one after the other, each
// replaced by its Deployment; then the audit.
func (s *kubeShop) testPodsDeleted(t *testing.T) {
	s.stockUp(t)
	before := s.orderFiles(t)
	l := s.load(8, 100000)
	finished := false
	t.Cleanup(func() {
		if !finished {
			l.finish()
		}
	})
	for _, app := range []string{inventoryApp, notifyApp, storefrontApp, orderApp} {
		l.waitOrders(t, 100)
		pods := s.readyPods(app)
		require.NotEmpty(t, pods, app)
		t.Logf("deleting pod %s under load", pods[0])
		s.followLogs(pods[0])
		s.kubectl("delete", "pod", pods[0], "--wait=false")
		// Replaced: every replica of the Deployment available again.
		require.Eventually(t, func() bool { return !slices.Contains(s.readyPods(app), pods[0]) }, time.Minute, 200*time.Millisecond)
		out, err := s.node.Kubectl(t.Context(), "rollout", "status", "deployment/"+app, "--timeout", "3m")
		require.NoError(t, err, "%s's Deployment replaces the deleted pod: %s", app, out)
	}
	l.waitOrders(t, 200)
	answers := l.finish()
	finished = true
	r := audit(t, s.since(before), answers)
	t.Logf("pods deleted under load: %d orders answered 200, %d failed", r.ok, r.failed)
	logFailures(t, answers)
}

// logFailures logs how many orders failed, by status and the start of the
// answer.
func logFailures(t *testing.T, answers []loadAnswer) {
	kinds := map[string]int{}
	for _, a := range answers {
		if a.status != http.StatusOK {
			kinds[fmt.Sprintf("%d %.90s", a.status, a.body)]++
		}
	}
	for k, n := range kinds {
		t.Logf("%5d x %s", n, k)
	}
}

// sent waits for a bounded load to send all its orders and returns the
// answers.
func (l *orderLoad) sent() []loadAnswer {
	l.wg.Wait()
	return l.answers
}

// followLogs writes pod's logs to the artifacts until it is gone.
func (s *kubeShop) followLogs(pod string) {
	f, err := os.Create(filepath.Join(kubeArtifacts, "deleted", pod+".log"))
	require.NoError(s.t, err)
	cmd := exec.Command(filepath.Join(repo("bin", "kube-"+kubeVersion), "kubectl"), "--kubeconfig", s.node.Kubeconfig,
		"logs", "-f", "--all-containers", "--prefix", "--timestamps", pod)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(s.t, cmd.Start())
	s.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); f.Close() })
	time.Sleep(500 * time.Millisecond) // attached before the pod is told to go
}

// since is the shop as the audit sees it, counting only orders stored
// after before (earlier subtests' orders are theirs).
func (s *kubeShop) since(before map[string]bool) auditedShop {
	return sinceShop{s, before}
}

type sinceShop struct {
	*kubeShop
	before map[string]bool
}

func (v sinceShop) orderFiles(t *testing.T) map[string]bool {
	all := v.kubeShop.orderFiles(t)
	for id := range v.before {
		delete(all, id)
	}
	return all
}

func (v sinceShop) emails(t *testing.T) map[string]int {
	all := v.kubeShop.emails(t)
	for id := range v.before {
		delete(all, id)
	}
	return all
}

// outsiderTLS speaks HTTP/2 over TLS to addr without a client certificate
// and returns nil only if the server answers.
func outsiderTLS(addr string) error {
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return fmt.Errorf("connect (the port should answer): %w", err)
	}
	c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.Handshake(); err != nil {
		return err
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")); err != nil {
		return err
	}
	_, err = c.Read(make([]byte, 64))
	return err
}
