package container

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netsentry/netsentry/internal/testcorpus"
)

// The image end to end: make image builds netsentry:latest with podman;
// the test reads the image's root through `podman image mount` (these
// machines refuse the setrlimit calls of `podman run`) and runs its
// entrypoint from there: --version, --check-config of the image's own
// configuration, and a live capture as the image's user (10001, only the
// binary's file capabilities) in a network namespace while tcpreplay sends
// a corpus capture, with the API's counts and the flows checked against
// the capture's oracles. Where `podman run` works, the container runs too.

const image = "netsentry:latest"

// capNetRaw and capBPF are the capability bits the sensor may hold.
const (
	capNetRaw = 13
	capBPF    = 39
)

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestImage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root: it builds an image with podman and captures in a network namespace (run make test as root)")
	}
	for _, tool := range []string{"podman", "setcap", "getcap", "make", "tcpreplay", "ip", "setpriv", "curl", "python3", "tshark"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("needs %s (make deps installs it): %v", tool, err)
		}
	}
	root := testcorpus.Root(t)
	sh(t, "make", "-C", root, "image", "IMAGE="+image)
	mnt := strings.TrimSpace(sh(t, "podman", "image", "mount", image))
	t.Cleanup(func() { exec.Command("podman", "image", "unmount", image).Run() })
	bin := filepath.Join(mnt, "usr/local/bin/netsentry")

	t.Run("contents", func(t *testing.T) {
		var cfg struct {
			Config struct {
				User       string
				Entrypoint []string
				Cmd        []string
			}
		}
		var inspect []json.RawMessage
		if err := json.Unmarshal([]byte(sh(t, "podman", "image", "inspect", image)), &inspect); err != nil || len(inspect) != 1 {
			t.Fatalf("podman image inspect: %v", err)
		}
		json.Unmarshal(inspect[0], &cfg)
		if cfg.Config.User != "10001:10001" || strings.Join(cfg.Config.Entrypoint, " ") != "/usr/local/bin/netsentry" ||
			strings.Join(cfg.Config.Cmd, " ") != "--config /etc/netsentry/netsentry.yaml" {
			t.Errorf("image config %+v", cfg.Config)
		}
		passwd, _ := os.ReadFile(filepath.Join(mnt, "etc/passwd"))
		group, _ := os.ReadFile(filepath.Join(mnt, "etc/group"))
		if !strings.Contains(string(passwd), "netsentry:x:10001:10001:") || !strings.Contains(string(group), "netsentry:x:10001:") {
			t.Errorf("no user netsentry 10001 in the image:\n%s%s", passwd, group)
		}
		if st, err := os.Stat(filepath.Join(mnt, "etc/ssl/certs/ca-certificates.crt")); err != nil || st.Size() < 10000 {
			t.Errorf("CA bundle: %v", err)
		}
		want, _ := os.ReadFile(filepath.Join(root, "configs/netsentry.yaml"))
		if got, err := os.ReadFile(filepath.Join(mnt, "etc/netsentry/netsentry.yaml")); err != nil || !bytes.Equal(got, want) {
			t.Errorf("the image's config is not configs/netsentry.yaml (%v)", err)
		}
		for _, d := range []string{"var/lib/netsentry/data", "etc/netsentry/alerts"} {
			st, err := os.Stat(filepath.Join(mnt, d))
			if err != nil || st.Sys().(*syscall.Stat_t).Uid != 10001 {
				t.Errorf("/%s is not the sensor user's: %v", d, err)
			}
		}
		if c := strings.TrimSpace(sh(t, "getcap", bin)); !strings.HasSuffix(c, " cap_net_raw,cap_bpf=p") {
			t.Errorf("file capabilities %q, want cap_net_raw,cap_bpf=p", c)
		}
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("the image's binary is not static (%v)", p.Type)
			}
		}
	})

	t.Run("entrypoint", func(t *testing.T) {
		if out := sh(t, bin, "--version"); !strings.HasPrefix(out, "netsentry ") {
			t.Errorf("--version: %q", out)
		}
		out := sh(t, bin, "--check-config", "--config", filepath.Join(mnt, "etc/netsentry/netsentry.yaml"))
		if lines := strings.Split(strings.TrimSpace(out), "\n"); lines[len(lines)-1] != "ok" {
			t.Errorf("--check-config of the image's config:\n%s", out)
		}
	})

	t.Run("capture", func(t *testing.T) { capture(t, bin) })

	t.Run("podman-run", func(t *testing.T) {
		out, err := exec.Command("podman", "run", "--rm", "--network", "none", image, "--version").CombinedOutput()
		if err != nil && strings.Contains(string(out), "setrlimit") {
			t.Logf("podman run is refused on this machine (%s); the entrypoint ran from the mounted image instead", strings.TrimSpace(string(out)))
			return
		}
		if err != nil || !strings.HasPrefix(string(out), "netsentry ") {
			t.Fatalf("podman run --version: %v\n%s", err, out)
		}
		out, err = exec.Command("podman", "run", "--rm", "--network", "none", image, "--check-config", "--config", "/etc/netsentry/netsentry.yaml").CombinedOutput()
		if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "ok") {
			t.Fatalf("podman run --check-config: %v\n%s", err, out)
		}
	})
}

// capture runs the image's binary as its user in a fresh network namespace
// on a veth while tcpreplay sends zeek-http-bro.org.pcap into the peer.
func capture(t *testing.T, bin string) {
	ns := fmt.Sprintf("nsimg%d", os.Getpid())
	sh(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	sh(t, "ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
	sh(t, "ip", "netns", "exec", ns, "ip", "link", "add", "s0", "type", "veth", "peer", "name", "c0")
	for _, i := range []string{"s0", "c0"} {
		sh(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf."+i+".disable_ipv6=1")
		sh(t, "ip", "netns", "exec", ns, "ip", "link", "set", i, "mtu", "16000", "up")
	}
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755) // the test's temporary root is root's alone
	for _, d := range []string{dir, filepath.Join(dir, "data"), filepath.Join(dir, "alerts")} {
		os.MkdirAll(d, 0o755)
		os.Chown(d, 10001, 10001)
	}
	cfg := filepath.Join(dir, "netsentry.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, "enable_web: false\nstorage:\n  local_path: %q\nalerts:\n  config_path: %q\nperformance:\n  threads: 2\n  memory_limit_mb: 64\n",
		filepath.Join(dir, "data"), filepath.Join(dir, "alerts")), 0o644)
	flows := filepath.Join(dir, "flows.jsonl")
	out := &syncBuf{}
	// setpriv drops root: the process has no capability but what the
	// binary's file capabilities give it.
	cmd := exec.Command("ip", "netns", "exec", ns, "setpriv", "--reuid=10001", "--regid=10001", "--clear-groups",
		bin, "--config", cfg, "--interface", "c0", "--flows-out", flows)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for end := time.Now().Add(15 * time.Second); !strings.Contains(out.String(), "REST API server started"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) || cmd.ProcessState != nil {
			t.Fatalf("the sensor did not start:\n%s", out.String())
		}
	}
	// Exactly NET_RAW and BPF are effective (raised from the file's
	// permitted set), nothing else.
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	var eff uint64
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:\t"); ok {
			eff, _ = strconv.ParseUint(v, 16, 64)
		}
	}
	if want := uint64(1)<<capNetRaw | uint64(1)<<capBPF; eff != want {
		t.Errorf("effective capabilities %#x, want %#x (NET_RAW, BPF)", eff, want)
	}
	// Two queues: the eBPF fan-out, which CAP_BPF allows.
	if !strings.Contains(out.String(), "2 queues") || !strings.Contains(strings.ToLower(out.String()), "fan-out ebpf") {
		t.Errorf("want two queues with the eBPF fan-out:\n%s", out.String())
	}

	pcap := filepath.Join(testcorpus.PcapsDir(), "zeek-http-bro.org.pcap")
	sh(t, "ip", "netns", "exec", ns, "tcpreplay", "-q", "-i", "s0", "--pps=20000", pcap)
	var stats struct {
		Packets uint64 `json:"packets"`
		Drops   uint64 `json:"drops"`
	}
	for end := time.Now().Add(10 * time.Second); stats.Packets < 751; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("API counts %d packets of 751 (drops %d)", stats.Packets, stats.Drops)
		}
		body, err := exec.Command("ip", "netns", "exec", ns, "curl", "-sf", "http://127.0.0.1:8080/api/v1/network/stats").Output()
		if err != nil {
			continue
		}
		json.Unmarshal(body, &stats)
	}
	if stats.Packets != 751 || stats.Drops != 0 {
		t.Errorf("API: %d packets, %d drops; the capture has 751 frames", stats.Packets, stats.Drops)
	}
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the sensor: %v\n%s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the sensor did not stop on SIGINT")
	}
	oracle := filepath.Join(testcorpus.PcapsDir(), "oracle", "zeek-http-bro.org.pcap.conv_exact.tsv")
	check := filepath.Join(filepath.Dir(testcorpus.PcapsDir()), "check", "compare_flows.py")
	if res, err := exec.Command("python3", check, pcap, flows, oracle).CombinedOutput(); err != nil {
		t.Errorf("compare_flows.py on the image's live capture: %v\n%s", err, res)
	}
}
