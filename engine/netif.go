package engine

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrNoInterface is wrapped by NewLive's error when an interface to capture
// on does not exist; the message lists the interfaces that do.
var ErrNoInterface = errors.New("no such interface")

// ErrNoDefaultRoute is returned by DefaultRouteInterface when neither
// routing table has a usable default route.
var ErrNoDefaultRoute = errors.New("no default route")

// ThreadNetDir is the /proc directory of the calling thread's network
// namespace, for DefaultRouteInterface. (/proc/net is that of the
// process's main thread, which a thread that entered another namespace
// does not share.)
const ThreadNetDir = "/proc/thread-self/net"

// Route flags of <linux/route.h> and <linux/ipv6_route.h>.
const (
	rtfUp     = 0x0001
	rtfReject = 0x0200 // unreachable, prohibit, blackhole
)

// DefaultRouteInterface returns the interface of the default route found
// in the routing tables of netDir (a /proc/PID/net directory, e.g.
// ThreadNetDir): the IPv4 table ("route") first, else the IPv6 table
// ("ipv6_route"). Among several default routes of a table the lowest metric
// wins; routes that are not up, reject routes (unreachable, prohibit,
// blackhole: the kernel's own IPv6 "unreachable" default on lo is one) and
// routes on lo are skipped. It wraps ErrNoDefaultRoute when there is none.
// A table that cannot be read counts as empty unless both cannot be read.
func DefaultRouteInterface(netDir string) (string, error) {
	v4, err4 := os.ReadFile(filepath.Join(netDir, "route"))
	if name, ok := defaultRouteV4(v4); ok {
		return name, nil
	}
	v6, err6 := os.ReadFile(filepath.Join(netDir, "ipv6_route"))
	if name, ok := defaultRouteV6(v6); ok {
		return name, nil
	}
	if err4 != nil && err6 != nil {
		return "", fmt.Errorf("read routing tables: %w", errors.Join(err4, err6))
	}
	return "", fmt.Errorf("find the default route in %s: %w", netDir, ErrNoDefaultRoute)
}

// defaultRouteV4 picks the default route of a /proc/net/route table:
// a header line, then "Iface Destination Gateway Flags RefCnt Use Metric
// Mask MTU Window IRTT", addresses and mask in hex.
func defaultRouteV4(data []byte) (string, bool) {
	best, bestMetric, found := "", uint64(0), false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for first := true; sc.Scan(); first = false {
		f := strings.Fields(sc.Text())
		if first || len(f) < 8 {
			continue
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		flags, err2 := strconv.ParseUint(f[3], 16, 32)
		metric, err3 := strconv.ParseUint(f[6], 10, 32)
		mask, err4 := strconv.ParseUint(f[7], 16, 32)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil || dst != 0 || mask != 0 {
			continue
		}
		if usable(f[0], flags) && (!found || metric < bestMetric) {
			best, bestMetric, found = f[0], metric, true
		}
	}
	return best, found
}

// defaultRouteV6 picks the default route of a /proc/net/ipv6_route table:
// "dst dst_len src src_len next_hop metric refcnt use flags iface", all in
// hex, no header.
func defaultRouteV6(data []byte) (string, bool) {
	best, bestMetric, found := "", uint64(0), false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || len(f[0]) != 32 || strings.Trim(f[0], "0") != "" {
			continue
		}
		plen, err1 := strconv.ParseUint(f[1], 16, 8)
		metric, err2 := strconv.ParseUint(f[5], 16, 32)
		flags, err3 := strconv.ParseUint(f[8], 16, 32)
		if err1 != nil || err2 != nil || err3 != nil || plen != 0 {
			continue
		}
		if usable(f[9], flags) && (!found || metric < bestMetric) {
			best, bestMetric, found = f[9], metric, true
		}
	}
	return best, found
}

func usable(ifname string, flags uint64) bool {
	return flags&rtfUp != 0 && flags&rtfReject == 0 && ifname != "lo" && ifname != "*"
}

// checkInterfaces returns an error wrapping ErrNoInterface, naming the
// interfaces that exist, for the first of names that does not, in the
// network namespace of the calling thread.
func checkInterfaces(names []string) error {
	ifs, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("list interfaces: %w", err)
	}
	have := make([]string, len(ifs))
	for i, ifc := range ifs {
		have[i] = ifc.Name
	}
	for _, name := range names {
		if !slices.Contains(have, name) {
			return noInterfaceError(name, have)
		}
	}
	return nil
}

// noInterfaceError is `no such interface "eth9"; interfaces here: lo, ens3`.
func noInterfaceError(name string, have []string) error {
	here := "none"
	if len(have) > 0 {
		here = strings.Join(have, ", ")
	}
	return fmt.Errorf("%w %q; interfaces here: %s", ErrNoInterface, name, here)
}
