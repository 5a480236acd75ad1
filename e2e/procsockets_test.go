package e2e

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// procSocket is one socket a process holds, from /proc/net/{tcp,udp}{,6}.
type procSocket struct {
	proto         string // tcp, tcp6, udp, udp6
	local, remote netip.AddrPort
	state         string // the kernel's hex state: 0A is a TCP listener
	pid           int
	comm          string // the process's name
}

func (s procSocket) String() string {
	return fmt.Sprintf("%s %s (remote %s, state %s) held by %s[%d]", s.proto, s.local, s.remote, s.state, s.comm, s.pid)
}

// listening reports whether s accepts connections or datagrams from
// anybody: a TCP listener, or a UDP socket not connected to one peer.
func (s procSocket) listening() bool {
	if strings.HasPrefix(s.proto, "tcp") {
		return s.state == "0A"
	}
	return !s.remote.Addr().IsValid() || s.remote.Addr().IsUnspecified()
}

// processTree returns root and every process descended from it.
func processTree(t *testing.T, root int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		fields := strings.Fields(rest)
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		children[ppid] = append(children[ppid], pid)
	}
	tree := []int{root}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree
}

// processSockets returns the IPv4 and IPv6 TCP and UDP sockets the
// processes pids hold.
func processSockets(t *testing.T, pids []int) []procSocket {
	t.Helper()
	type owner struct {
		pid  int
		comm string
	}
	byInode := map[string]owner{}
	for _, pid := range pids {
		dir := filepath.Join("/proc", strconv.Itoa(pid))
		comm, err := os.ReadFile(filepath.Join(dir, "comm"))
		require.NoError(t, err, "process %d is gone", pid)
		fds, err := os.ReadDir(filepath.Join(dir, "fd"))
		require.NoError(t, err)
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
			if err != nil {
				continue // closed meanwhile
			}
			if inode, ok := strings.CutPrefix(link, "socket:["); ok {
				byInode[strings.TrimSuffix(inode, "]")] = owner{pid, strings.TrimSpace(string(comm))}
			}
		}
	}
	var out []procSocket
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		raw, err := os.ReadFile("/proc/net/" + proto)
		require.NoError(t, err)
		for _, line := range strings.Split(string(raw), "\n")[1:] {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
			f := strings.Fields(line)
			if len(f) < 10 {
				continue
			}
			o, ok := byInode[f[9]]
			if !ok {
				continue
			}
			out = append(out, procSocket{proto: proto, local: procAddr(t, f[1]), remote: procAddr(t, f[2]), state: f[3], pid: o.pid, comm: o.comm})
		}
	}
	return out
}

// procAddr decodes an address of /proc/net/*: the IP as 32-bit words in host
// (little-endian) order, a colon, and the port in hex.
func procAddr(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ipHex, portHex, ok := strings.Cut(s, ":")
	require.True(t, ok, s)
	raw, err := hex.DecodeString(ipHex)
	require.NoError(t, err, s)
	for w := 0; w+4 <= len(raw); w += 4 {
		raw[w], raw[w+1], raw[w+2], raw[w+3] = raw[w+3], raw[w+2], raw[w+1], raw[w]
	}
	ip, ok := netip.AddrFromSlice(raw)
	require.True(t, ok, s)
	port, err := strconv.ParseUint(portHex, 16, 16)
	require.NoError(t, err, s)
	return netip.AddrPortFrom(ip.Unmap(), uint16(port))
}
