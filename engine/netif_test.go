package engine

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// ipRouteDefault is iproute2's answer recorded beside a fixture: the
// interface of its first usable "default ... dev NAME" line (IPv4 lines come
// first, each family's lines by metric), "" when there is none.
func ipRouteDefault(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "ip-route-default.txt"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^default (?:via \S+ )?dev (\S+)`)
	for _, line := range strings.Split(string(data), "\n") {
		if m := re.FindStringSubmatch(line); m != nil && m[1] != "lo" {
			return m[1]
		}
	}
	return ""
}

// TestDefaultRouteFixtures: on tables the kernel printed, the interface
// found is the one iproute2 showed as the default route, and the one the
// namespace was set up with.
func TestDefaultRouteFixtures(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{"box", "eth0"},
		{"metric", "wan1"},   // the lower of two metrics
		{"ipv6only", "ens6"}, // no IPv4 default: IPv6's
		{"reject", "up0"},    // unreachable and prohibit defaults are skipped
		{"none", ""},         // only the IPv6 null route on lo
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join("testdata", "route", c.name)
			if ip := ipRouteDefault(t, dir); ip != c.want {
				t.Fatalf("fixture: iproute2 showed %q, the test expects %q", ip, c.want)
			}
			got, err := DefaultRouteInterface(dir)
			if c.want == "" {
				if !errors.Is(err, ErrNoDefaultRoute) {
					t.Errorf("got %q, %v; want ErrNoDefaultRoute", got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Errorf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

// TestDefaultRouteUnreadable: no routing table at all is an error that is
// not ErrNoDefaultRoute; one table missing is only an empty table.
func TestDefaultRouteUnreadable(t *testing.T) {
	if _, err := DefaultRouteInterface(t.TempDir()); err == nil || errors.Is(err, ErrNoDefaultRoute) {
		t.Errorf("no tables: err = %v", err)
	}
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join("testdata", "route", "ipv6only", "ipv6_route"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "ipv6_route"), data, 0o644)
	if got, err := DefaultRouteInterface(dir); err != nil || got != "ens6" {
		t.Errorf("IPv6 table only: %q, %v", got, err)
	}
}

func TestNoInterfaceError(t *testing.T) {
	err := noInterfaceError("eth9", []string{"lo", "ens3"})
	if want := `no such interface "eth9"; interfaces here: lo, ens3`; err.Error() != want || !errors.Is(err, ErrNoInterface) {
		t.Errorf("got %q, want %q wrapping ErrNoInterface", err, want)
	}
}

// FuzzDefaultRoute: any table parses without panic, and a name found is a
// field of the table.
func FuzzDefaultRoute(f *testing.F) {
	dirs, _ := filepath.Glob(filepath.Join("testdata", "route", "*"))
	for _, d := range dirs {
		if filepath.Ext(d) == ".md" {
			continue
		}
		v4, _ := os.ReadFile(filepath.Join(d, "route"))
		v6, _ := os.ReadFile(filepath.Join(d, "ipv6_route"))
		f.Add(v4, v6)
	}
	f.Fuzz(func(t *testing.T, v4, v6 []byte) {
		if name, ok := defaultRouteV4(v4); ok && !hasField(v4, name) {
			t.Errorf("IPv4: %q is not in the table", name)
		}
		if name, ok := defaultRouteV6(v6); ok && !hasField(v6, name) {
			t.Errorf("IPv6: %q is not in the table", name)
		}
	})
}

func hasField(data []byte, name string) bool {
	for _, f := range strings.Fields(string(data)) {
		if f == name {
			return name != ""
		}
	}
	return false
}
