//go:build linux

package engine

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/netsentry/netsentry/flowtable"
)

// routeNet is a namespace with lo up and a veth pair nsrt0/nsrt0p; no
// traffic is sent in it.
func routeNet(t *testing.T) *testNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (network namespaces)")
	}
	tn := &testNet{ns: fmt.Sprintf("nsroute%d-%d", os.Getpid(), netSeq.Add(1))}
	if out, err := exec.Command("ip", "netns", "add", tn.ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", tn.ns).Run() })
	tn.run(t, "ip", "link", "set", "lo", "up")
	tn.run(t, "ip", "link", "add", "nsrt0", "type", "veth", "peer", "name", "nsrt0p")
	tn.run(t, "ip", "link", "set", "nsrt0", "up")
	tn.run(t, "ip", "link", "set", "nsrt0p", "up")
	return tn
}

// ipDefaultDev is iproute2's default route interface in the namespace.
func (tn *testNet) ipDefaultDev(t *testing.T, family string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^default (?:via \S+ )?dev (\S+)`).FindStringSubmatch(tn.run(t, "ip", family, "route", "show", "default"))
	if m == nil {
		t.Fatalf("ip %s route show default: no default route", family)
	}
	return m[1]
}

// TestDefaultRouteNetns: in a namespace with a default route on a veth, the
// interface read from /proc for the calling thread is the one iproute2
// shows, for IPv4 and for an IPv6-only namespace.
func TestDefaultRouteNetns(t *testing.T) {
	t.Run("ipv4", func(t *testing.T) {
		tn := routeNet(t)
		tn.run(t, "ip", "addr", "add", "192.0.2.1/24", "dev", "nsrt0")
		tn.run(t, "ip", "route", "add", "default", "via", "192.0.2.254", "dev", "nsrt0")
		var got string
		var err error
		tn.inNetns(t, func() { got, err = DefaultRouteInterface(ThreadNetDir) })
		if want := tn.ipDefaultDev(t, "-4"); err != nil || got != want {
			t.Errorf("got %q, %v; iproute2 shows %q", got, err, want)
		}
	})
	t.Run("ipv6", func(t *testing.T) {
		tn := routeNet(t)
		tn.run(t, "ip", "addr", "add", "2001:db8::2/64", "dev", "nsrt0p", "nodad")
		tn.run(t, "ip", "-6", "route", "add", "default", "via", "2001:db8::1", "dev", "nsrt0p")
		var got string
		var err error
		tn.inNetns(t, func() { got, err = DefaultRouteInterface(ThreadNetDir) })
		if want := tn.ipDefaultDev(t, "-6"); err != nil || got != want || want != "nsrt0p" {
			t.Errorf("got %q, %v; iproute2 shows %q", got, err, want)
		}
	})
	t.Run("none", func(t *testing.T) {
		tn := routeNet(t)
		var err error
		tn.inNetns(t, func() { _, err = DefaultRouteInterface(ThreadNetDir) })
		if !errors.Is(err, ErrNoDefaultRoute) {
			t.Errorf("err = %v, want ErrNoDefaultRoute", err)
		}
	})
}

// TestNewLiveNoSuchInterface: an interface that does not exist is an error
// naming it and every interface of the namespace, in iproute2's order.
func TestNewLiveNoSuchInterface(t *testing.T) {
	tn := routeNet(t)
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\d+: ([^:@]+)`).FindAllStringSubmatch(tn.run(t, "ip", "-o", "link", "show"), -1) {
		names = append(names, m[1])
	}
	var err error
	tn.inNetns(t, func() {
		_, err = NewLive(LiveConfig{Interfaces: []string{"nsrt0", "eth9"}, Queues: 1, RingMB: 2,
			NewShard: func(int) (*flowtable.Shard, error) { return flowtable.New(flowtable.Config{}, nil) }})
	})
	want := `no such interface "eth9"; interfaces here: ` + strings.Join(names, ", ")
	if err == nil || err.Error() != want || !errors.Is(err, ErrNoInterface) {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}
