package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netsentry/netsentry/configs"
)

// nsLinks lists the namespace's interfaces as iproute2 does, in index order.
func nsLinks(t *testing.T, ns string) []string {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link: %v: %s", err, out)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\d+: ([^:@]+)`).FindAllStringSubmatch(string(out), -1) {
		names = append(names, m[1])
	}
	return names
}

// TestUseDefaultRoute: the embedded default's interface is replaced by the
// default route's (a fixture table the kernel printed, whose default route
// iproute2 showed on wan1), and the log line says so.
func TestUseDefaultRoute(t *testing.T) {
	cfg := configs.Default()
	note := useDefaultRoute(&cfg, filepath.Join("..", "..", "engine", "testdata", "route", "metric"))
	if got := cfg.Interfaces(); len(got) != 1 || got[0] != "wan1" {
		t.Errorf("interfaces %v, want [wan1]", got)
	}
	if !strings.Contains(note, "wan1: the interface of the default route") || !strings.Contains(note, "names eth0") {
		t.Errorf("note %q", note)
	}
	cfg = configs.Default()
	useDefaultRoute(&cfg, filepath.Join("..", "..", "engine", "testdata", "route", "none"))
	if got := cfg.Interfaces(); len(got) != 1 || got[0] != "eth0" {
		t.Errorf("no default route: interfaces %v, want the built-in [eth0]", got)
	}
}

// TestDefaultConfigCapturesOnDefaultRoute: with neither --config nor
// --interface, the daemon captures on the interface of the namespace's
// default route (as iproute2 shows it) and logs why.
func TestDefaultConfigCapturesOnDefaultRoute(t *testing.T) {
	ns := liveNet(t)
	bin := buildBinary(t)
	for _, args := range [][]string{
		{"ip", "-n", ns, "addr", "add", "192.0.2.1/24", "dev", "c0"},
		{"ip", "-n", ns, "route", "add", "default", "via", "192.0.2.254", "dev", "c0"},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	out, err := exec.Command("ip", "-n", ns, "route", "show", "default").CombinedOutput()
	m := regexp.MustCompile(`dev (\S+)`).FindStringSubmatch(string(out))
	if err != nil || m == nil {
		t.Fatalf("ip route show default: %v: %s", err, out)
	}
	want := m[1]
	p := &liveProc{cmd: exec.Command("ip", "netns", "exec", ns, bin, "--storage-path", t.TempDir())}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill() })
	end := time.Now().Add(10 * time.Second)
	for time.Now().Before(end) && !strings.Contains(p.stderr.String(), "capturing on") {
		time.Sleep(20 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
	log := p.stderr.String()
	if !strings.Contains(log, "capturing on ["+want+"]") {
		t.Errorf("not capturing on %s, the default route's interface:\n%s", want, log)
	}
	if !strings.Contains(log, "capture interface "+want+": the interface of the default route") {
		t.Errorf("the log does not say why %s:\n%s", want, log)
	}
}

// TestNoSuchInterface: an interface that does not exist, by flag, by file or
// from the built-in default without a default route, stops the daemon with
// exit code 2 and an error naming the interfaces that exist (as iproute2
// lists them) and what to do next.
func TestNoSuchInterface(t *testing.T) {
	ns := liveNet(t)
	bin := buildBinary(t)
	here := "; interfaces here: " + strings.Join(nsLinks(t, ns), ", ") + "\n"
	cfg := filepath.Join(t.TempDir(), "cfg.yaml")
	os.WriteFile(cfg, []byte("capture_interface: eth9\nenable_api: false\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--interface", "eth9", "--api-enable=false"}, `netsentry: no such interface "eth9"` + here + "(pass --interface with one of them)\n"},
		{[]string{"--config", cfg}, `netsentry: no such interface "eth9"` + here + "(set capture_interface or network_analysis.capture_interfaces in " + cfg + " to one of them, or pass --interface NAME)\n"},
		{[]string{"--api-enable=false"}, `netsentry: no such interface "eth0"` + here + "(no default route to take the interface from: pass --interface with one of them, or --config FILE)\n"},
	} {
		cmd := exec.Command("ip", append([]string{"netns", "exec", ns, bin, "--storage-path", t.TempDir()}, c.args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("%v: err %v, want exit code 2", c.args, err)
		}
		if !strings.HasSuffix(stderr.String(), c.want) {
			t.Errorf("%v: stderr\n%s\nwant it to end with\n%s", c.args, stderr.String(), c.want)
		}
	}
}
