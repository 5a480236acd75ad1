package launch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A host of the host mode is a Linux network namespace. Every host of one
// run is wired to one bridge, which lives in a namespace of its own (the
// run's switch), so nothing of a run is in this machine's own network: two
// runs on one machine cannot see each other, nor anything else here (mDNS
// included), and the machine's own namespace gains no link or address.
//
// Every name a run creates starts with "shop-<run>-", where <run> is the
// run's id, and the run holds a lock (a flock on StateRoot()/<run>.lock) while
// it lives. What a run leaves behind is removed three ways: by the run
// itself when it stops; by its janitor, a shell process in a session of its
// own that waits for the launcher to go (its standard input is a pipe only
// the launcher holds) and then kills every process of the run's namespaces
// and deletes them; and by the next run's start, which removes the
// namespaces of every run whose lock nobody holds.

// nsPrefix starts the name of every namespace the host mode creates.
const nsPrefix = "shop-"

// StateRoot holds each run's lock file and state directory (sentry's
// credentials, Redis's files): in memory, /dev/shm, where there is one, so
// that Redis persisting every write measures no disk; a run lives no longer
// than the machine's uptime anyway. It is one place per machine, whatever
// TMPDIR says, since every run's start looks there for the locks of the
// others.
func StateRoot() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm/shop-hosts"
	}
	return "/run/shop-hosts"
}

var runIDPattern = regexp.MustCompile(`^shop-([0-9a-f]{6})-`)

// ip runs the ip command and returns its error with its output.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// namespaces lists the network namespaces whose names start with prefix.
func namespaces(prefix string) ([]string, error) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns list: %w (the host mode needs iproute2)", err)
	}
	var ns []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			ns = append(ns, f[0])
		}
	}
	return ns, nil
}

// NamespacePIDs returns the processes in network namespace ns.
func NamespacePIDs(ns string) ([]int, error) {
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns pids %s: %w", ns, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// KillNamespace sends SIGKILL to every process in ns until none is left
// (up to 10 s), then deletes ns.
func KillNamespace(ns string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids, err := NamespacePIDs(ns)
		if err != nil || len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("namespace %s: processes %v outlived SIGKILL", ns, pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return ip("netns", "delete", ns)
}

// lockFile takes an exclusive flock on path (creating it), without waiting
// when wait is false. It returns the open file, which holds the lock until
// closed, or nil if another process holds it.
func lockFile(path string, wait bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// cleanStale removes what runs that are gone left behind: the namespaces
// and state of every run whose lock nobody holds. The caller holds the
// setup lock, so no run is between creating its lock and taking it.
func cleanStale(log *slog.Logger) error {
	all, err := namespaces(nsPrefix)
	if err != nil {
		return err
	}
	byRun := map[string][]string{}
	for _, ns := range all {
		if m := runIDPattern.FindStringSubmatch(ns); m != nil {
			byRun[m[1]] = append(byRun[m[1]], ns)
		}
	}
	locks, _ := filepath.Glob(filepath.Join(StateRoot(), "*.lock"))
	for _, l := range locks {
		if id := strings.TrimSuffix(filepath.Base(l), ".lock"); byRun[id] == nil {
			byRun[id] = []string{}
		}
	}
	var errs []error
	for id, nss := range byRun {
		lock := filepath.Join(StateRoot(), id+".lock")
		held, err := lockFile(lock, false)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if held == nil {
			continue // that run lives
		}
		for _, ns := range nss {
			if err := KillNamespace(ns); err != nil {
				errs = append(errs, err)
			}
		}
		if err := os.RemoveAll(filepath.Join(StateRoot(), id)); err != nil {
			errs = append(errs, err)
		}
		os.Remove(lock)
		held.Close()
		log.Info("removed what a stopped run left behind", "run", id, "namespaces", nss)
	}
	return errors.Join(errs...)
}

// janitorScript waits for its standard input to close (the launcher is
// gone, however it went), then kills every process of the run's namespaces
// and deletes them, and removes the run's state. $1 is the namespaces'
// prefix, $2 the state directory, $3 the lock file.
const janitorScript = `
cat >/dev/null
list() { ip netns list | cut -d' ' -f1 | grep "^$1" ; }
for round in 1 2 3 4 5 6 7 8 9 10; do
  left=
  for ns in $(list "$1"); do
    for pid in $(ip netns pids "$ns"); do kill -9 "$pid" 2>/dev/null; left=1; done
  done
  [ -z "$left" ] && break
  sleep 0.2
done
for ns in $(list "$1"); do ip netns delete "$ns"; done
rm -rf "$2" "$3"
`

// startJanitor starts the run's janitor and returns the pipe that keeps it
// waiting: closing it (or the launcher's exit) sets it to work.
func startJanitor(prefix, dir, lock string) (*exec.Cmd, *os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command("/bin/sh", "-c", janitorScript, "janitor", prefix, dir, lock)
	cmd.Stdin = r
	// A session of its own: a signal to the launcher's process group does
	// not reach it, and no Pdeathsig: it must outlive the launcher.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, nil, fmt.Errorf("start the host mode's janitor: %w", err)
	}
	r.Close()
	return cmd, w, nil
}

// network is one run's bridge and hosts.
type network struct {
	run      string // the run's id
	switchNS string // the namespace that holds the bridge
}

const bridge = "br0"

func newNetwork(run string) (*network, error) {
	n := &network{run: run, switchNS: nsPrefix + run + "-switch"}
	for _, args := range [][]string{
		{"netns", "add", n.switchNS},
		{"-n", n.switchNS, "link", "set", "lo", "up"},
		{"-n", n.switchNS, "link", "add", bridge, "type", "bridge"},
		{"-n", n.switchNS, "link", "set", bridge, "up"},
	} {
		if err := ip(args...); err != nil {
			return n, err
		}
	}
	return n, nil
}

// addHost creates host name's namespace, wires it to the bridge and gives
// it addr. Its port on the bridge is named as the host, in the switch's
// namespace; inside the host the link is eth0.
func (n *network) addHost(name string, addr netip.Addr) (string, error) {
	ns := nsPrefix + n.run + "-" + name
	for _, args := range [][]string{
		{"netns", "add", ns},
		{"-n", n.switchNS, "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"-n", n.switchNS, "link", "set", name, "master", bridge, "up"},
		{"-n", ns, "addr", "add", netip.PrefixFrom(addr, hostSubnet.Bits()).String(), "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
		{"-n", ns, "link", "set", "lo", "up"},
	} {
		if err := ip(args...); err != nil {
			return ns, err
		}
	}
	// Bound how late a host's writes can arrive (see hostTCP).
	cmd := exec.Command("nsenter", "--net=/run/netns/"+ns, "--", "/bin/sh", "-c", hostTCP)
	if out, err := cmd.CombinedOutput(); err != nil {
		return ns, fmt.Errorf("host %s: TCP retransmission limits: %v: %s", name, err, bytes.TrimSpace(out))
	}
	return ns, nil
}

// hostTCP makes a host give up on data the other end has not acknowledged
// after about 1.4 s (three tries, from 200 ms, doubling), also on
// connections its processes already closed, instead of Linux's default of
// about 15 minutes. Without it, a write a cut-off host sent to Redis waits
// in its network stack and lands once the link is back, long after its
// order gave up (ORDER_TIMEOUT): the order is then stored although its
// client was told it failed and its stock hold may have been given back.
// Machines of a real deployment need the same bound (net.ipv4.tcp_retries2
// and net.ipv4.tcp_orphan_retries, or TCP_USER_TIMEOUT on the store's
// connections), below ORDER_TIMEOUT.
const hostTCP = `echo 2 > /proc/sys/net/ipv4/tcp_retries2 && echo 1 > /proc/sys/net/ipv4/tcp_orphan_retries`

// setPort takes the host's port on the bridge down (a pulled cable: the
// host's packets go nowhere, nobody's reach it) or up again.
func (n *network) setPort(host string, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return ip("-n", n.switchNS, "link", "set", host, state)
}

// remove kills every process in the run's namespaces and deletes them.
func (n *network) remove() error {
	nss, err := namespaces(nsPrefix + n.run + "-")
	if err != nil {
		return err
	}
	var errs []error
	for _, ns := range nss {
		errs = append(errs, KillNamespace(ns))
	}
	return errors.Join(errs...)
}

// inNamespace returns the command line that runs bin with args in network
// namespace ns (nsenter execs bin, so the process is bin's own).
func inNamespace(ns, bin string, args []string) (string, []string) {
	return "nsenter", append([]string{"--net=/run/netns/" + ns, "--", bin}, args...)
}

// dialIn connects to address from inside network namespace ns: the socket
// is created on an OS thread switched into ns, and stays in ns afterwards.
func dialIn(ctx context.Context, ns, network, address string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// Unlocked only once the thread is back in its own namespace: a
		// thread left locked ends with this goroutine and is not reused.
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer self.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			done <- result{err: fmt.Errorf("host namespace %s: %w", ns, err)}
			return
		}
		defer target.Close()
		if err := setns(target); err != nil {
			done <- result{err: fmt.Errorf("enter namespace %s: %w", ns, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, address)
		if setns(self) == nil {
			runtime.UnlockOSThread()
		}
		done <- result{c, err}
	}()
	r := <-done
	return r.c, r.err
}

func setns(f *os.File) error { return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET) }
