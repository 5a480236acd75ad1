package kubenode

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/daprfn/shop/internal/launch"
)

// PauseImage is the pod sandbox image containerd runs: Kubernetes' own
// pause, built by `make kube` and imported by Import.
const PauseImage = "docker.io/local/pause:3.10"

func (n *Node) socket() string { return n.path("containerd", "containerd.sock") }

// startContainerd runs containerd with a configuration of the node's own:
// its state under Dir, the CNI plugins of the distribution, and the pod
// network on the node's bridge.
func (n *Node) startContainerd(ctx context.Context) error {
	// restrict_oom_score_adj: where lowering a process's oom_score_adj is
	// forbidden (as in some VMs and containers), every pod sandbox fails to
	// start without it ("can't get final child's PID from pipe: EOF").
	config := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[6]q
`, n.path("containerd", "root"), n.path("containerd", "state"), n.socket(), n.socket()+".ttrpc", PauseImage, n.path("cni"))
	if err := os.WriteFile(n.path("containerd", "config.toml"), []byte(config), 0o644); err != nil {
		return err
	}
	cni := fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "shopkube",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, PodCIDR)
	if err := os.WriteFile(n.path("cni", "10-shopkube.conflist"), []byte(cni), 0o644); err != nil {
		return err
	}
	if err := n.run("containerd", "containerd", "--config", n.path("containerd", "config.toml")); err != nil {
		return err
	}
	return n.waitFor(ctx, "containerd", time.Minute, func(ctx context.Context) error {
		_, err := n.ctr(ctx, "version")
		return err
	})
}

// ctr runs containerd's client on the node's containerd, in Kubernetes'
// namespace of it.
func (n *Node) ctr(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "ctr", append([]string{"--address", n.socket(), "--namespace", "k8s.io"}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Import loads image archives (WriteArchive's) into the node's containerd,
// where pods find them without pulling.
func (n *Node) Import(ctx context.Context, archives ...string) error {
	for _, a := range archives {
		if out, err := n.ctr(ctx, "images", "import", "--no-unpack=false", a); err != nil {
			return fmt.Errorf("import %s: %v: %s", a, err, out)
		}
	}
	return nil
}

func (n *Node) startKubelet(p *pki) error {
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
readOnlyPort: 0
cgroupDriver: cgroupfs
cgroupRoot: /%[6]s
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%[2]s
clusterDNS: [%[3]s]
clusterDomain: cluster.local
resolvConf: %[4]s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[5]s}
authorization:
  mode: Webhook
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%%
  imagefs.available: 1%%
  nodefs.inodesFree: 1%%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
`, NodeAddr, n.socket(), DNSAddr, n.path("resolv.conf"), p.path("ca.crt"), cgroupRoot)
	if err := os.WriteFile(n.path("kubelet.yaml"), []byte(config), 0o644); err != nil {
		return err
	}
	// Pods resolve the cluster's names only: no DNS server beyond the
	// cluster's.
	if err := os.WriteFile(n.path("resolv.conf"), []byte("nameserver "+DNSAddr+"\n"), 0o644); err != nil {
		return err
	}
	if err := makeCgroupRoot(); err != nil {
		return err
	}
	return n.run("kubelet", n.bin("kubelet"), "--config", n.path("kubelet.yaml"),
		"--kubeconfig", n.path("kubelet.kubeconfig"), "--root-dir", n.path("kubelet"),
		"--cert-dir", n.path("kubelet", "pki"), "--hostname-override", NodeName, "--node-ip", NodeAddr)
}

func (n *Node) startKubeProxy() error {
	config := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %s
mode: iptables
clusterCIDR: %s
hostnameOverride: %s
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
`, n.path("kube-proxy.kubeconfig"), PodCIDR, NodeName)
	if err := os.WriteFile(n.path("kube-proxy.yaml"), []byte(config), 0o644); err != nil {
		return err
	}
	return n.run("kube-proxy", n.bin("kube-proxy"), "--config", n.path("kube-proxy.yaml"))
}

// Clean removes what a node left behind: its pods' processes, its
// processes, its network, its mounts and dir.
func Clean(dir string) error {
	if dir == "" || dir == "/" {
		return fmt.Errorf("node dir %q: want a directory of the node's own", dir)
	}
	var errs []error
	errs = append(errs, cleanNetwork())
	errs = append(errs, killPods())
	if err := unmountUnder(dir); err != nil {
		// Never remove a tree that may still have mounts in it.
		return errors.Join(append(errs, err)...)
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// cgroupRoot is the kubelet's root cgroup: every pod of the node is under
// it, in each cgroup v1 hierarchy or in the v2 tree, and nothing else is.
const cgroupRoot = "shopkube"

// killPods kills every process in the node's cgroups and removes them:
// pods live in network namespaces of their own, so killing the node's
// namespace does not reach them. Then it removes the pods' network
// namespaces that no process uses any more.
func killPods() error {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/" + cgroupRoot)
	if v2 := "/sys/fs/cgroup/" + cgroupRoot; isDir(v2) {
		roots = append(roots, v2)
	}
	var left []int
	for range 50 {
		left = left[:0]
		for _, root := range roots {
			_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
					return nil
				}
				data, _ := os.ReadFile(p)
				for _, f := range strings.Fields(string(data)) {
					if pid, err := strconv.Atoi(f); err == nil {
						_ = syscall.Kill(pid, syscall.SIGKILL)
						left = append(left, pid)
					}
				}
				return nil
			})
		}
		if len(left) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var errs []error
	if len(left) > 0 {
		errs = append(errs, fmt.Errorf("pod processes %v outlived SIGKILL", left))
	}
	for _, root := range roots {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for _, d := range slices.Backward(dirs) {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
			}
		}
	}
	// containerd bind-mounts each pod's network namespace at
	// /run/netns/cni-*; those of another runtime's live pods still have
	// processes and stay.
	cni, _ := filepath.Glob("/run/netns/cni-*")
	for _, p := range cni {
		out, err := exec.Command("ip", "netns", "pids", filepath.Base(p)).Output()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			continue
		}
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
		_ = os.Remove(p)
	}
	return errors.Join(errs...)
}

// makeCgroupRoot creates the kubelet's root cgroup, which it wants to find
// in every hierarchy: under each cgroup v1 controller (a new cpuset cgroup
// gets its parent's CPUs and memory nodes, or it could run nothing), or in
// the v2 tree.
func makeCgroupRoot() error {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return os.MkdirAll("/sys/fs/cgroup/"+cgroupRoot, 0o755)
	}
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*/cgroup.procs")
	for _, procs := range hierarchies {
		h := filepath.Dir(procs)
		if fi, err := os.Lstat(h); err != nil || !fi.IsDir() { // cpu,cpuacct links to a hierarchy listed too
			continue
		}
		dir := filepath.Join(h, cgroupRoot)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("kubelet root cgroup: %w", err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if v, err := os.ReadFile(filepath.Join(h, f)); err == nil {
				if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
					return fmt.Errorf("kubelet root cgroup %s: %w", f, err)
				}
			}
		}
	}
	return nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// cleanNetwork kills every process in the node's namespace and deletes it
// (which deletes the veth pair, and the routes through it).
func cleanNetwork() error {
	if _, err := os.Stat("/run/netns/" + Namespace); err != nil {
		return nil
	}
	return launch.KillNamespace(Namespace)
}

var octalEscape = regexp.MustCompile(`\\[0-7]{3}`)

// unmountUnder unmounts every mount point under dir, deepest first.
func unmountUnder(dir string) error {
	if dir == "" {
		return nil
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) <= 4 {
			continue
		}
		// mountinfo writes a space, tab, newline or backslash as \ooo.
		point := octalEscape.ReplaceAllStringFunc(fields[4], func(e string) string {
			n, _ := strconv.ParseUint(e[1:], 8, 8)
			return string(rune(n))
		})
		if point == dir || strings.HasPrefix(point, dir+"/") {
			points = append(points, point)
		}
	}
	slices.SortFunc(points, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	var errs []error
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}
