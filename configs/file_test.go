package configs

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestDiff(t *testing.T) {
	a := Default()
	if d := Diff(a, a.Clone()); len(d) != 0 {
		t.Fatalf("a config differs from its clone: %v", d)
	}
	b := a.Clone()
	b.LogLevel = "debug"
	b.Performance.Threads = a.Performance.Threads + 3
	b.NetworkAnalysis.BPFFilter = "tcp port 80"
	want := []string{"log_level", "network_analysis.bpf_filter", "performance.threads"}
	if d := Diff(a, b); !slices.Equal(d, want) {
		t.Fatalf("Diff = %v, want %v", d, want)
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "netsentry.yaml")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("new contents\n")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "new contents\n" {
		t.Fatalf("read back %q, %v", got, err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want the old file's 0600", st.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary files left behind: %v", ents)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "x.yaml"), nil); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}
