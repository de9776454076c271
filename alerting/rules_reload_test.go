package alerting

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRulesReload: files added, changed and removed in the rules directory
// are picked up by Reload (and so by Watch); a bad file is reported once
// with its path and field, keeps the rule it held, and the others load.
func TestRulesReload(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cpu.json"), descHighCPU)
	rs, errs := LoadRules(dir, testCatalog{})
	if rs == nil || len(errs) != 0 {
		t.Fatal(errs)
	}
	var mu sync.Mutex
	var sets [][]string
	rs.OnChange(func(c []*Compiled) {
		var ids []string
		for _, r := range c {
			ids = append(ids, r.Rule.ID+":"+r.Rule.Name)
		}
		mu.Lock()
		sets = append(sets, ids)
		mu.Unlock()
	})
	last := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return sets[len(sets)-1]
	}
	calls := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(sets)
	}
	ids := func() []string {
		var out []string
		for _, r := range rs.List() {
			out = append(out, r.ID+":"+r.Name)
		}
		return out
	}

	// Nothing changed: no call.
	if errs := rs.Reload(); len(errs) != 0 || calls() != 1 {
		t.Fatalf("idle reload: %v, %d calls", errs, calls())
	}
	// Added.
	writeFile(t, filepath.Join(dir, "portscan.yaml"), yamlPortScan)
	if errs := rs.Reload(); len(errs) != 0 {
		t.Fatal(errs)
	}
	want := []string{"cpu:High CPU Usage", "portscan:Potential Port Scan"}
	if got := ids(); !slices.Equal(got, want) || !slices.Equal(last(), want) {
		t.Fatalf("after add: %v (callback %v), want %v", got, last(), want)
	}
	// Changed (a new name).
	writeFile(t, filepath.Join(dir, "cpu.json"), strings.Replace(descHighCPU, "High CPU Usage", "CPU hot", 1))
	bump(t, filepath.Join(dir, "cpu.json"))
	if errs := rs.Reload(); len(errs) != 0 {
		t.Fatal(errs)
	}
	want = []string{"cpu:CPU hot", "portscan:Potential Port Scan"}
	if got := ids(); !slices.Equal(got, want) || !slices.Equal(last(), want) {
		t.Fatalf("after change: %v (callback %v), want %v", got, last(), want)
	}
	// A bad change: reported with path and field, once; the rule stays.
	bad := filepath.Join(dir, "portscan.yaml")
	writeFile(t, bad, strings.Replace(yamlPortScan, "network.unique_dest_port_count", "network.no_such", 1))
	bump(t, bad)
	n := calls()
	errs = rs.Reload()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), bad) || !strings.Contains(errs[0].Error(), `conditions[1].metric: "network.no_such": unknown metric`) {
		t.Fatalf("bad file: %v", errs)
	}
	if errs := rs.Reload(); len(errs) != 0 || calls() != n {
		t.Fatalf("bad file reported again (%v) or a change made (%d calls, want %d)", errs, calls(), n)
	}
	if got := ids(); !slices.Equal(got, want) {
		t.Fatalf("after a bad change: %v, want the old rule kept: %v", got, want)
	}
	// A new bad file beside a new good one: the good one loads.
	writeFile(t, filepath.Join(dir, "broken.json"), `{"name": "x", "metric": "cpu.usage", "comparator": "bigger", "threshold": 1, "severity": "info"}`)
	writeFile(t, filepath.Join(dir, "mem.json"), strings.Replace(descHighCPU, "High CPU Usage", "Memory", 1))
	errs = rs.Reload()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), filepath.Join(dir, "broken.json")) || !strings.Contains(errs[0].Error(), "comparator") {
		t.Fatalf("broken.json: %v", errs)
	}
	want = []string{"cpu:CPU hot", "mem:Memory", "portscan:Potential Port Scan"}
	if got := ids(); !slices.Equal(got, want) {
		t.Fatalf("after adding mem.json: %v, want %v", got, want)
	}
	// Removed.
	if err := os.Remove(filepath.Join(dir, "cpu.json")); err != nil {
		t.Fatal(err)
	}
	rs.Reload()
	want = []string{"mem:Memory", "portscan:Potential Port Scan"}
	if got := ids(); !slices.Equal(got, want) || !slices.Equal(last(), want) {
		t.Fatalf("after remove: %v (callback %v), want %v", got, last(), want)
	}
	// A rule written over the API is not reloaded as a change.
	created, err := rs.Create(mustParse(t, descHighCPU))
	if err != nil {
		t.Fatal(err)
	}
	n = calls()
	if errs := rs.Reload(); len(errs) != 0 || calls() != n {
		t.Fatalf("reload after Create: %v, %d calls (want %d)", errs, calls(), n)
	}

	// Watch picks a new file within a few intervals.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	reports := make(chan error, 16)
	go rs.Watch(ctx, 50*time.Millisecond, func(err error) { reports <- err })
	writeFile(t, filepath.Join(dir, "late.json"), strings.Replace(descHighCPU, "High CPU Usage", "Late", 1))
	for end := time.Now().Add(5 * time.Second); !slices.Contains(ids(), "late:Late"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("Watch did not load late.json within 5 s: %v", ids())
		}
	}
	if _, ok := rs.Get(created.ID); !ok {
		t.Error("the API's rule is gone")
	}
	select {
	case err := <-reports:
		t.Errorf("Watch reported %v (the bad files were reported before)", err)
	default:
	}
}

// bump moves path's modification time forward, so that a rewrite of the
// same size within the file system's time granularity is seen.
func bump(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	mt := fi.ModTime().Add(time.Second)
	if err := os.Chtimes(path, mt, mt); err != nil {
		t.Fatal(err)
	}
}
