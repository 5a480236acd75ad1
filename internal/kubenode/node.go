// Package kubenode runs a one-node Kubernetes cluster on this machine from
// binaries built from source: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kubelet and kube-proxy, with containerd, runc and the CNI
// plugins from the distribution. The node is a network namespace of its own,
// wired to this machine by a veth pair, so its iptables rules, its bridge
// and its pods' addresses stay out of the machine's own network.
//
// It needs root (namespaces, mounts, cgroups) and is what `make test-kube`
// runs the shop on; docs/kubernetes.md tells how.
package kubenode

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The node's network: the host end of the veth is HostAddr, the node's end
// NodeAddr; pods get addresses of PodCIDR on the node's bridge, services of
// ServiceCIDR, and cluster DNS answers on DNSAddr.
const (
	Namespace   = "shopkube"
	HostAddr    = "198.19.0.1"
	NodeAddr    = "198.19.0.2"
	PodCIDR     = "10.88.0.0/16"
	ServiceCIDR = "10.96.0.0/16"
	DNSAddr     = "10.96.0.10"
	NodeName    = "node"
	hostLink    = "shopkube0"
	apiPort     = 6443
)

// Config says where the binaries and the node's files are.
type Config struct {
	// KubeBin holds kube-apiserver, kube-controller-manager,
	// kube-scheduler, kubelet, kube-proxy and kubectl.
	KubeBin string
	// Dir holds everything the node writes: certificates, etcd's data,
	// containerd's images and containers, the kubelet's pods, logs. It is
	// emptied first.
	Dir string
	Log *slog.Logger
}

// Node is a running one-node cluster.
type Node struct {
	cfg   Config
	procs []*proc
	// Kubeconfig is an admin's kubeconfig for the API server.
	Kubeconfig string
}

// Logs is where each process of the node writes its output (<name>.log).
func (n *Node) Logs() string { return filepath.Join(n.cfg.Dir, "logs") }

func (n *Node) path(p ...string) string { return filepath.Join(append([]string{n.cfg.Dir}, p...)...) }

// Start brings the node up: the API server ready, the node Ready. What a
// previous run left behind is removed first.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("a Kubernetes node needs root: namespaces, mounts and cgroups")
	}
	for _, b := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl"} {
		if _, err := os.Stat(filepath.Join(cfg.KubeBin, b)); err != nil {
			return nil, fmt.Errorf("%s is missing: run `make kube` (%w)", b, err)
		}
	}
	for _, b := range []string{"etcd", "containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "nsenter", "ip"} {
		if _, err := exec.LookPath(b); err != nil {
			return nil, fmt.Errorf("%s is missing: install Debian's containerd, runc, containernetworking-plugins, iptables and etcd-server (%w)", b, err)
		}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Dir == "" {
		return nil, errors.New("kubenode: Config.Dir is empty: the node needs a directory of its own")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	cfg.Dir = dir
	if err := Clean(cfg.Dir); err != nil {
		return nil, fmt.Errorf("remove what a previous node left: %w", err)
	}
	n := &Node{cfg: cfg}
	if err := n.start(ctx); err != nil {
		n.Stop()
		return nil, err
	}
	return n, nil
}

func (n *Node) start(ctx context.Context) error {
	for _, d := range []string{"logs", "etcd", "cni", "containerd", "kubelet"} {
		if err := os.MkdirAll(n.path(d), 0o700); err != nil {
			return err
		}
	}
	if err := n.network(); err != nil {
		return fmt.Errorf("node network: %w", err)
	}
	p, err := newPKI(n.path("pki"))
	if err != nil {
		return err
	}
	if err := p.serviceAccountKeys(); err != nil {
		return err
	}
	if err := p.issue("apiserver", "kube-apiserver", nil,
		[]net.IP{net.ParseIP("10.96.0.1"), net.ParseIP(NodeAddr), net.ParseIP("127.0.0.1")},
		[]string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"}); err != nil {
		return err
	}
	// The API server's client certificate to the kubelet (logs, exec,
	// port-forward); the kubelet asks the API server whether it may.
	if err := p.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", nil, nil, nil); err != nil {
		return err
	}

	// Every other client authenticates with a token of its own, as the
	// user Kubernetes' default RBAC roles name.
	tokens := map[string][3]string{ // kubeconfig name -> token, user, groups
		"admin":                   {rand.Text(), "admin", "system:masters"},
		"kubelet":                 {rand.Text(), "system:node:" + NodeName, "system:nodes"},
		"kube-proxy":              {rand.Text(), "system:kube-proxy", ""},
		"kube-controller-manager": {rand.Text(), "system:kube-controller-manager", ""},
		"kube-scheduler":          {rand.Text(), "system:kube-scheduler", ""},
	}
	var csv strings.Builder
	for _, t := range tokens {
		fmt.Fprintf(&csv, "%s,%s,%s", t[0], t[1], t[1])
		if t[2] != "" {
			fmt.Fprintf(&csv, ",%q", t[2])
		}
		csv.WriteString("\n")
	}
	if err := os.WriteFile(n.path("pki", "tokens.csv"), []byte(csv.String()), 0o600); err != nil {
		return err
	}
	for name, t := range tokens {
		if err := n.writeKubeconfig(name, t[0], p.cert); err != nil {
			return err
		}
	}
	n.Kubeconfig = n.path("admin.kubeconfig")

	if err := n.run("etcd", "etcd", "--name", NodeName, "--data-dir", n.path("etcd"),
		"--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", NodeName+"=http://127.0.0.1:2380"); err != nil {
		return err
	}
	if err := n.run("kube-apiserver", n.bin("kube-apiserver"),
		"--etcd-servers", "http://127.0.0.1:2379",
		"--bind-address", "0.0.0.0", "--secure-port", strconv.Itoa(apiPort), "--advertise-address", NodeAddr,
		"--tls-cert-file", p.path("apiserver.crt"), "--tls-private-key-file", p.path("apiserver.key"),
		"--client-ca-file", p.path("ca.crt"),
		"--kubelet-client-certificate", p.path("apiserver-kubelet-client.crt"), "--kubelet-client-key", p.path("apiserver-kubelet-client.key"),
		"--kubelet-preferred-address-types", "InternalIP",
		"--service-cluster-ip-range", ServiceCIDR,
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", p.path("sa.pub"), "--service-account-signing-key-file", p.path("sa.key"),
		"--token-auth-file", p.path("tokens.csv"),
		"--authorization-mode", "Node,RBAC", "--enable-admission-plugins", "NodeRestriction",
		"--allow-privileged=true"); err != nil {
		return err
	}
	if err := n.waitFor(ctx, "the API server", 2*time.Minute, func(ctx context.Context) error {
		_, err := n.Kubectl(ctx, "get", "--raw", "/readyz")
		return err
	}); err != nil {
		return err
	}
	// The kubelet asks the API server (webhook authorization) whether the
	// API server's own client certificate may reach its API.
	if out, err := n.Kubectl(ctx, "create", "clusterrolebinding", "apiserver-kubelet-api",
		"--clusterrole", "system:kubelet-api-admin", "--user", "kube-apiserver-kubelet-client"); err != nil {
		return fmt.Errorf("bind the kubelet API role: %v: %s", err, out)
	}

	if err := n.run("kube-controller-manager", n.bin("kube-controller-manager"),
		"--kubeconfig", n.path("kube-controller-manager.kubeconfig"),
		"--authentication-kubeconfig", n.path("kube-controller-manager.kubeconfig"),
		"--authorization-kubeconfig", n.path("kube-controller-manager.kubeconfig"),
		"--bind-address", "127.0.0.1",
		"--service-account-private-key-file", p.path("sa.key"), "--root-ca-file", p.path("ca.crt"),
		"--use-service-account-credentials=true", "--leader-elect=false",
		"--cluster-signing-cert-file", p.path("ca.crt"), "--cluster-signing-key-file", p.path("ca.key"),
		"--service-cluster-ip-range", ServiceCIDR); err != nil {
		return err
	}
	if err := n.run("kube-scheduler", n.bin("kube-scheduler"),
		"--kubeconfig", n.path("kube-scheduler.kubeconfig"),
		"--authentication-kubeconfig", n.path("kube-scheduler.kubeconfig"),
		"--authorization-kubeconfig", n.path("kube-scheduler.kubeconfig"),
		"--bind-address", "127.0.0.1", "--leader-elect=false"); err != nil {
		return err
	}

	if err := n.startContainerd(ctx); err != nil {
		return err
	}
	if err := n.startKubelet(p); err != nil {
		return err
	}
	if err := n.startKubeProxy(); err != nil {
		return err
	}
	return n.waitFor(ctx, "the node to be Ready", 3*time.Minute, func(ctx context.Context) error {
		out, err := n.Kubectl(ctx, "get", "node", NodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if out != "True" {
			return fmt.Errorf("node condition Ready is %q", out)
		}
		return nil
	})
}

// network creates the node's namespace and its link to this machine: the
// node routes everything through the host end, so pods reach services
// outside the cluster (masqueraded as the node), and this machine reaches
// pods and services through routes to the node.
func (n *Node) network() error {
	nsPath := "/run/netns/" + Namespace
	for _, args := range [][]string{
		{"netns", "add", Namespace},
		{"link", "add", hostLink, "type", "veth", "peer", "name", "eth0", "netns", Namespace},
		{"addr", "add", HostAddr + "/30", "dev", hostLink},
		{"link", "set", hostLink, "up"},
		{"-n", Namespace, "addr", "add", NodeAddr + "/30", "dev", "eth0"},
		{"-n", Namespace, "link", "set", "eth0", "up"},
		{"-n", Namespace, "link", "set", "lo", "up"},
		{"-n", Namespace, "route", "add", "default", "via", HostAddr},
		{"route", "add", PodCIDR, "via", NodeAddr},
		{"route", "add", ServiceCIDR, "via", NodeAddr},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
	// The node forwards its pods' packets; bridged packets pass iptables,
	// so a pod reaches a service whose endpoint is on the same bridge.
	sysctl := `echo 1 > /proc/sys/net/ipv4/ip_forward && echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables`
	if out, err := exec.Command("nsenter", "--net="+nsPath, "--", "/bin/sh", "-c", sysctl).CombinedOutput(); err != nil {
		return fmt.Errorf("node sysctls: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

func (n *Node) bin(name string) string { return filepath.Join(n.cfg.KubeBin, name) }

// run starts a process of the node, in the node's network namespace, with
// its output in Logs()/name.log. It is killed if this process dies.
func (n *Node) run(name, bin string, args ...string) error {
	logf, err := os.Create(filepath.Join(n.Logs(), name+".log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/" + Namespace, "--", bin}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	n.cfg.Log.Info("node process started", "name", name, "pid", cmd.Process.Pid)
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	n.procs = append(n.procs, p)
	return nil
}

// proc is one process of the node; done is closed when it has exited.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Kubectl runs kubectl as the cluster's admin and returns its output.
func (n *Node) Kubectl(ctx context.Context, args ...string) (string, error) {
	return n.KubectlIn(ctx, nil, args...)
}

// KubectlIn is Kubectl with stdin.
func (n *Node) KubectlIn(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, n.bin("kubectl"), append([]string{"--kubeconfig", n.Kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (n *Node) writeKubeconfig(name, token string, ca []byte) error {
	return os.WriteFile(n.path(name+".kubeconfig"), fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: shop
  cluster:
    server: https://%s:%d
    certificate-authority: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: shop
  context: {cluster: shop, user: %s, namespace: default}
current-context: shop
`, NodeAddr, apiPort, n.path("pki", "ca.crt"), name, token, name), 0o600)
}

// waitFor polls check every half second until it succeeds, within.
func (n *Node) waitFor(ctx context.Context, what string, within time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var last error
	for {
		if last = check(ctx); last == nil {
			return nil
		}
		for _, p := range n.procs {
			select {
			case <-p.done:
				return fmt.Errorf("waiting for %s: %s exited (%v); its log: %s", what, p.name, p.err, filepath.Join(n.Logs(), p.name+".log"))
			default:
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v; logs in %s)", what, ctx.Err(), last, n.Logs())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Stop kills every process of the node and its pods and removes its
// network; its files stay in Dir (the logs) until the next Start or Clean.
func (n *Node) Stop() {
	for _, p := range slices.Backward(n.procs) {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	if err := killPods(); err != nil {
		n.cfg.Log.Warn("node pods left behind", "err", err)
	}
	if err := cleanNetwork(); err != nil {
		n.cfg.Log.Warn("node network left behind", "err", err)
	}
	if err := unmountUnder(n.cfg.Dir); err != nil {
		n.cfg.Log.Warn("node mounts left behind", "err", err)
	}
}
