package launch

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// Hosts is the launcher's own section of a run file (not the dapr CLI's):
// it runs the file's apps across hosts, as they would run on several
// machines. Each host is a Linux network namespace on one bridge (root
// only), with an address from 198.18.0.0/24, the range reserved for network
// tests:
//
//   - the infrastructure host (198.18.0.2) runs what the components need:
//     Redis, which every sidecar reaches through REDIS_HOST;
//   - the control-plane host (198.18.0.3) runs sentry, Dapr's certificate
//     authority;
//   - app hosts 1 to AppHosts (198.18.0.11, .12, ...) each run one replica
//     of every app of the file, each replica with its own daprd.
//
// Every daprd runs with mTLS: sentry issues its certificate, and the apps'
// Configurations (configFilePath) say which app may call which route. On a
// host, the apps and the sidecars' APIs listen on the host's loopback, as
// on a machine of their own; only daprd's internal port, where the other
// sidecars call it over mTLS, listens on the host's address, and name
// resolution (mDNS) finds the replicas across the bridge.
type Hosts struct {
	// AppHosts is how many app hosts run, each with one replica of every
	// app (1 to 8).
	AppHosts int `yaml:"appHosts"`
	// Infrastructure is what the infrastructure host runs: "redis" (a
	// redis-server on the bridge, persisting every write, whose address
	// every daprd gets as REDIS_HOST).
	Infrastructure []string `yaml:"infrastructure"`
	// Forward lists ports of this machine's loopback the launcher forwards
	// to the same ports of the first app host's loopback, so that the
	// seed's curl lines work from here too.
	Forward []int `yaml:"forward"`
}

// The address plan of every run: each run has a bridge of its own, so all
// runs use the same addresses.
var (
	hostSubnet  = netip.MustParsePrefix("198.18.0.0/24")
	infraAddr   = netip.MustParseAddr("198.18.0.2")
	controlAddr = netip.MustParseAddr("198.18.0.3")
)

// appHostAddr is app host i's address (i from 1).
func appHostAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 0, byte(10 + i)}) }

// extraHostAddr is the address of the n-th host added with AddHost (from 1).
func extraHostAddr(n int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 0, byte(100 + n)}) }

// Ports of the infrastructure and control-plane services on their hosts.
const (
	RedisPort         = 6379
	SentryPort        = 50001
	SentryHealthzPort = 8080
	// ControlPlaneTrustDomain is sentry's trust domain, which every daprd
	// must be told (--control-plane-trust-domain): a daprd that expects
	// another waits for its certificate forever, without an error.
	ControlPlaneTrustDomain = "localhost"
)

var (
	infrastructureKinds = []string{"redis"}
	hostNamePattern     = regexp.MustCompile(`^[a-z][a-z0-9]{0,14}$`)
)

func (h *Hosts) check(f *File) []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: hosts.%s: %s", f.path, field, fmt.Sprintf(format, args...)))
	}
	if h.AppHosts < 1 || h.AppHosts > 8 {
		bad("appHosts", "must be 1 to 8, got %d", h.AppHosts)
	}
	for _, k := range h.Infrastructure {
		if !slices.Contains(infrastructureKinds, k) {
			bad("infrastructure", "%q is not something the launcher runs: want one of %v", k, infrastructureKinds)
		}
	}
	for _, p := range h.Forward {
		if p < 1 || p > 65535 {
			bad("forward", "port %d out of range", p)
		}
	}
	for i, a := range f.Apps {
		if a.DaprInternalPort == 0 {
			bad(fmt.Sprintf("apps[%d].daprInternalGRPCPort", i), "required across hosts: the port where other hosts' sidecars call %s's (daprd's own pick can clash with another daprd's on the host)", a.AppID)
		}
		if la := firstNonEmpty(a.ListenAddress, f.Common.ListenAddress); la != "" && la != DefaultListenAddress {
			bad(fmt.Sprintf("apps[%d].listenAddress", i), "%q: on hosts the launcher decides the addresses (apps and sidecar APIs on each host's loopback, daprd's internal port on the host's address)", la)
		}
	}
	return errs
}

// Host is one host of a Cluster: a network namespace on the run's bridge.
type Host struct {
	// Name is the host's name in the run: infra, control, app1, app2, ...
	Name string
	// Namespace is its network namespace (ip netns exec Namespace ...).
	Namespace string
	// Addr is its address on the bridge.
	Addr netip.Addr
}

// DialContext connects to address as a process on the host would: the
// host's loopback is its own, and other hosts are reached over the bridge.
func (h *Host) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return dialIn(ctx, h.Namespace, network, address)
}

// HTTPClient is an HTTP client whose connections start on the host.
func (h *Host) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext: h.DialContext, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second,
	}}
}

// URL is http://127.0.0.1:port/path, which on the host is its loopback.
func (h *Host) URL(port int, path string) string {
	return "http://127.0.0.1:" + strconv.Itoa(port) + path
}
