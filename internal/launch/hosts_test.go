package launch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const hostsSection = `hosts:
  appHosts: 2
  infrastructure: [redis]
`

// hostsFile is valid with a hosts section and each app's internal port.
func hostsFile(t *testing.T) *File {
	t.Helper()
	raw := strings.Replace(valid, "apps:\n", hostsSection+"apps:\n", 1)
	raw = strings.Replace(raw, "daprGRPCPort: 50001\n", "daprGRPCPort: 50001\n  daprInternalGRPCPort: 50101\n", 1)
	f, err := Load(writeFile(t, raw))
	require.NoError(t, err)
	return f
}

func TestHostsSectionIsChecked(t *testing.T) {
	f := hostsFile(t)
	require.NotNil(t, f.Hosts)
	assert.Equal(t, 2, f.Hosts.AppHosts)

	for _, c := range []struct{ from, to, want string }{
		{"appHosts: 2", "appHosts: 0", "hosts.appHosts: must be 1 to 8"},
		{"appHosts: 2", "appHosts: 9", "hosts.appHosts: must be 1 to 8"},
		{"[redis]", "[redis, kafka]", `"kafka" is not something the launcher runs`},
		{"infrastructure: [redis]\n", "infrastructure: [redis]\n  forward: [70000]\n", "hosts.forward: port 70000 out of range"},
		{"infrastructure: [redis]\n", "infrastructure: [redis]\n  sentry: true\n", `unknown field "sentry"`},
		{"  daprInternalGRPCPort: 50101\n", "", "daprInternalGRPCPort: required across hosts"},
		{"  daprInternalGRPCPort: 50101\n", "  daprInternalGRPCPort: 50101\n  listenAddress: 0.0.0.0\n", "on hosts the launcher decides the addresses"},
	} {
		raw := strings.Replace(valid, "apps:\n", hostsSection+"apps:\n", 1)
		raw = strings.Replace(raw, "daprGRPCPort: 50001\n", "daprGRPCPort: 50001\n  daprInternalGRPCPort: 50101\n", 1)
		require.Contains(t, raw, c.from)
		_, err := Load(writeFile(t, strings.Replace(raw, c.from, c.to, 1)))
		assert.ErrorContains(t, err, c.want, "%s -> %s", c.from, c.to)
	}
}

func TestDaprdEnvComesFromTheFileAndTokensStayInEnv(t *testing.T) {
	raw := strings.Replace(valid, "  resourcesPath: ./components\n", "  resourcesPath: ./components\n  daprdEnv:\n    REDIS_HOST: localhost:6379\n    SHARED: common\n", 1)
	raw = strings.Replace(raw, "  env:\n    FUNCTIONS: order,inventory\n", "  env:\n    FUNCTIONS: order,inventory\n  daprdEnv:\n    SHARED: own\n", 1)
	f, err := Load(writeFile(t, raw))
	require.NoError(t, err)
	env := f.daprdFileEnv(f.Apps[0])
	assert.ElementsMatch(t, []string{"REDIS_HOST=localhost:6379", "SHARED=own"}, env, "the app's daprdEnv wins over common's")
	assert.NotContains(t, f.env(f.Apps[0]), "REDIS_HOST=localhost:6379", "daprdEnv is the sidecar's, not the app's")

	_, err = Load(writeFile(t, strings.Replace(raw, "    SHARED: own\n", "    APP_API_TOKEN: x\n", 1)))
	assert.ErrorContains(t, err, "daprdEnv.APP_API_TOKEN")
}

// On a host, the APIs and the app stay on the host's loopback; only the
// internal port listens on the host's address, which daprd announces, and
// every daprd gets its certificate from sentry.
func TestAHostsDaprdListensOnItsAddressForOtherSidecarsOnly(t *testing.T) {
	f := hostsFile(t)
	c := &Cluster{f: f, anchors: "PEM", noExporters: "/tmp/x.yaml"}
	h := &Host{Name: "app1", Namespace: "shop-abcdef-app1", Addr: appHostAddr(1)}
	args := strings.Join(c.daprdArgs(h, f.Apps[0], true), " ")
	assert.Contains(t, args, "--dapr-listen-addresses 127.0.0.1")
	assert.Contains(t, args, "--dapr-internal-grpc-listen-address 198.18.0.11")
	assert.Contains(t, args, "--dapr-internal-grpc-port 50101")
	assert.Contains(t, args, "--app-channel-address 127.0.0.1")
	assert.Contains(t, args, "--enable-mtls --sentry-address 198.18.0.3:50001 --control-plane-trust-domain "+ControlPlaneTrustDomain)
	env := c.daprdEnv(h, f.Apps[0], []string{"APP_API_TOKEN=t"}, true)
	for _, want := range []string{"DAPR_HOST_IP=198.18.0.11", "NAMESPACE=default", "REDIS_HOST=198.18.0.2:6379", "DAPR_TRUST_ANCHORS=PEM", "APP_API_TOKEN=t"} {
		assert.Contains(t, env, want)
	}
	assert.Contains(t, f.env(f.Apps[0]), "LISTEN_ADDRESS=127.0.0.1")

	plain := strings.Join(c.daprdArgs(h, f.Apps[0], false), " ")
	assert.NotContains(t, plain, "--enable-mtls")
	assert.NotContains(t, strings.Join(c.daprdEnv(h, f.Apps[0], nil, false), " "), "DAPR_TRUST_ANCHORS")
}

func TestTheAddressPlanStaysInTheTestRange(t *testing.T) {
	addrs := []string{infraAddr.String(), controlAddr.String()}
	for i := 1; i <= 8; i++ {
		addrs = append(addrs, appHostAddr(i).String(), extraHostAddr(i).String())
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		assert.True(t, hostSubnet.Contains(mustAddr(t, a)), "%s in %s", a, hostSubnet)
		assert.False(t, seen[a], "%s given twice", a)
		seen[a] = true
	}
	assert.Equal(t, "198.18.0.0/24", hostSubnet.String(), "addresses only from the range reserved for network tests")
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	require.NoError(t, err)
	return a
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root; CI runs the tests as root")
	}
}

// A run that is gone (nobody holds its lock) leaves namespaces and
// processes behind only until the next run starts: cleanStale kills and
// deletes them, and leaves a live run's alone.
func TestStaleRunsAreRemovedAndLiveOnesKept(t *testing.T) {
	requireRoot(t)
	require.NoError(t, os.MkdirAll(StateRoot(), 0o700))
	stale, live := randomRun(), randomRun()
	for _, id := range []string{stale, live} {
		ns := nsPrefix + id + "-app1"
		require.NoError(t, ip("netns", "add", ns))
		t.Cleanup(func() { _ = KillNamespace(ns) })
	}
	sleeper := exec.Command("nsenter", "--net=/run/netns/"+nsPrefix+stale+"-app1", "--", "sleep", "60")
	sleeper.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, sleeper.Start())
	exited := make(chan struct{})
	go func() { _ = sleeper.Wait(); close(exited) }()
	require.NoError(t, os.MkdirAll(filepath.Join(StateRoot(), stale), 0o700))
	lock, err := lockFile(filepath.Join(StateRoot(), live+".lock"), false)
	require.NoError(t, err)
	require.NotNil(t, lock)
	t.Cleanup(func() { os.Remove(lock.Name()); lock.Close() })

	setup, err := lockFile(filepath.Join(StateRoot(), "setup.lock"), true) // as a starting run holds it
	require.NoError(t, err)
	err = cleanStale(slog.New(slog.DiscardHandler))
	setup.Close()
	require.NoError(t, err)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the stale run's process was not killed")
	}
	nss, err := namespaces(nsPrefix)
	require.NoError(t, err)
	assert.NotContains(t, nss, nsPrefix+stale+"-app1", "the stale run's namespace is deleted")
	assert.Contains(t, nss, nsPrefix+live+"-app1", "a live run's namespace is kept")
	_, err = os.Stat(filepath.Join(StateRoot(), stale))
	assert.True(t, os.IsNotExist(err), "the stale run's state is removed")
}

// A connection dialled on a host starts in its namespace: the host's
// loopback is its own.
func TestDialInStartsInTheHostsNamespace(t *testing.T) {
	requireRoot(t)
	ns := nsPrefix + randomRun() + "-app1"
	require.NoError(t, ip("netns", "add", ns))
	t.Cleanup(func() { _ = KillNamespace(ns) })
	require.NoError(t, ip("-n", ns, "link", "set", "lo", "up"))

	l, err := net.Listen("tcp", "127.0.0.1:0") // on this machine's loopback
	require.NoError(t, err)
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 20 {
		_, err = dialIn(ctx, ns, "tcp", l.Addr().String())
		require.ErrorIs(t, err, syscall.ECONNREFUSED, "the host's loopback is not this machine's")
	}

	for range 20 { // the threads that dialled are back in this machine's namespace
		conn, err := net.Dial("tcp", l.Addr().String())
		require.NoError(t, err)
		conn.Close()
	}
}

// A host gives up on unacknowledged data in about 1.4 s, so that a write
// held by a cut-off link cannot land after its order gave up; this
// machine's own namespace is left as it was.
func TestAHostBoundsHowLateItsWritesArrive(t *testing.T) {
	requireRoot(t)
	before, err := os.ReadFile("/proc/sys/net/ipv4/tcp_retries2")
	require.NoError(t, err)
	n, err := newNetwork(randomRun())
	t.Cleanup(func() { _ = n.remove() })
	require.NoError(t, err)
	ns, err := n.addHost("app1", appHostAddr(1))
	require.NoError(t, err)
	for file, want := range map[string]string{"tcp_retries2": "2", "tcp_orphan_retries": "1"} {
		out, err := exec.Command("nsenter", "--net=/run/netns/"+ns, "--", "cat", "/proc/sys/net/ipv4/"+file).Output()
		require.NoError(t, err)
		assert.Equal(t, want, strings.TrimSpace(string(out)), file)
	}
	after, err := os.ReadFile("/proc/sys/net/ipv4/tcp_retries2")
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after), "this machine's namespace keeps its setting")
}

// A sidecar that dies at start ends StartCluster at once, with its name,
// and what was started is removed.
func TestAStartThatFailsEndsAtOnceAndLeavesNothing(t *testing.T) {
	requireRoot(t)
	sentry, err := filepath.Abs("../../bin/sentry-1.18.2/sentry")
	require.NoError(t, err)
	if _, err := os.Stat(sentry); err != nil {
		t.Skip("sentry not built: make sentry")
	}
	raw := strings.Replace(valid, "apps:\n", "hosts:\n  appHosts: 1\napps:\n", 1)
	raw = strings.Replace(raw, "daprGRPCPort: 50001\n", "daprGRPCPort: 50001\n  daprInternalGRPCPort: 50101\n", 1)
	raw = strings.Replace(raw, `command: ["bin/shop"]`, `command: ["/bin/sleep", "60"]`, 1)
	f, err := Load(writeFile(t, raw))
	require.NoError(t, err)
	var log strings.Builder
	start := time.Now()
	c, err := StartCluster(t.Context(), f, Options{Daprd: "/bin/false", Sentry: sentry, Out: io.Discard, HealthTimeout: time.Minute,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	require.Error(t, err)
	assert.Nil(t, c)
	assert.Contains(t, err.Error(), "app1 order-service daprd exited during start-up")
	assert.Less(t, time.Since(start), 30*time.Second, "without waiting for HealthTimeout")
	_, rest, ok := strings.Cut(log.String(), `msg="hosts removed" run=`)
	require.True(t, ok, "the hosts are removed: %s", log.String())
	left, err := namespaces(nsPrefix + strings.TrimSpace(rest) + "-")
	require.NoError(t, err)
	assert.Empty(t, left, "no namespace of the run is left")
}

// randomRun is a run id no other test (of this or another checkout, on this
// machine) uses at the same time.
func randomRun() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
