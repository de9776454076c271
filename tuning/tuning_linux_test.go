package tuning

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// vethNS creates a namespace with a veth pair (removed on cleanup) and
// returns its name.
func vethNS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	if _, err := exec.LookPath("ethtool"); err != nil {
		t.Skip("needs ethtool as the oracle")
	}
	ns := fmt.Sprintf("nstune%d", os.Getpid())
	sh := func(args ...string) string {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	sh("ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	sh("ip", "netns", "exec", ns, "ip", "link", "add", "s0", "type", "veth", "peer", "name", "c0")
	sh("ip", "netns", "exec", ns, "ip", "link", "set", "c0", "up")
	sh("ip", "netns", "exec", ns, "ethtool", "-K", "c0", "gro", "on", "tso", "on", "gso", "on")
	sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.conf.c0.rp_filter=1")
	return ns
}

// inNS runs f on a thread inside namespace ns.
func inNS(t *testing.T, ns string, f func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(orig)
	fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		t.Fatal(err)
	}
	f()
	if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
		runtime.UnlockOSThread()
	}
}

func find(fs []Finding, check, detailPrefix string) *Finding {
	for i := range fs {
		if fs[i].Check == check && strings.HasPrefix(fs[i].Detail, detailPrefix) {
			return &fs[i]
		}
	}
	return nil
}

// TestCheckApplyVeth: offloads and rp_filter on a veth are reported, fixed
// by Apply, and ethtool (the oracle) agrees afterwards.
func TestCheckApplyVeth(t *testing.T) {
	ns := vethNS(t)
	// /proc/sys/net is per namespace: read it from inside.
	var before, applied, after []Finding
	inNS(t, ns, func() {
		o := Options{Interfaces: []string{"c0"}, Proc: "/proc/thread-self/root/proc"}
		before = Check(o)
		applied = Apply(o)
		after = Check(o)
	})
	for _, off := range []string{"gro", "tso", "gso"} {
		if f := find(before, "offload", off); f == nil || f.Status != Warn || !strings.Contains(f.Fix, "ethtool -K c0 "+off+" off") {
			t.Errorf("check %s before apply: %+v", off, f)
		}
		if f := find(applied, "offload", off); f == nil || !f.Applied {
			t.Errorf("apply %s: %+v", off, f)
		}
		if f := find(after, "offload", off); f == nil || f.Status != OK {
			t.Errorf("check %s after apply: %+v", off, f)
		}
	}
	if f := find(before, "rp_filter", ""); f == nil || f.Status != Warn {
		t.Errorf("rp_filter before apply: %+v", f)
	}
	if f := find(after, "rp_filter", ""); f == nil || f.Status != OK {
		t.Errorf("rp_filter after apply: %+v", f)
	}
	out, err := exec.Command("ip", "netns", "exec", ns, "ethtool", "-k", "c0").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"generic-receive-offload: off", "tcp-segmentation-offload: off", "generic-segmentation-offload: off", "large-receive-offload: off"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("ethtool -k c0 after apply lacks %q", want)
		}
	}
}

// TestIRQFixture reads interrupts and affinities from a fixture /proc.
func TestIRQFixture(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(s), 0o644)
	}
	write("interrupts", `            CPU0       CPU1       CPU2       CPU3
 24:        100          0          0          0   PCI-MSI 524288-edge      eth0-TxRx-0
 25:          0        200          0          0   PCI-MSI 524289-edge      eth0-TxRx-1
 26:          5          0          0          0   PCI-MSI 524290-edge      eth1
NMI:          0          0          0          0   Non-maskable interrupts
`)
	write("irq/24/smp_affinity_list", "2\n")
	write("irq/25/smp_affinity_list", "0-1\n")
	fs := irqs(Options{Proc: root, CPUs: []int{0, 1}}, "eth0")
	if len(fs) != 2 {
		t.Fatalf("findings %+v, want 2", fs)
	}
	if fs[0].Status != Warn || fs[0].Fix != "echo 0-1 > /proc/irq/24/smp_affinity_list  # and keep irqbalance off it" {
		t.Errorf("irq 24 on cpu 2, workers on 0-1: %+v", fs[0])
	}
	if fs[1].Status != OK {
		t.Errorf("irq 25 on 0-1, workers on 0-1: %+v", fs[1])
	}
	if got := parseCPUList("0-3,8,10-11"); fmt.Sprint(got) != "[0 1 2 3 8 10 11]" {
		t.Errorf("parseCPUList: %v", got)
	}
}
