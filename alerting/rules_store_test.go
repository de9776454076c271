package alerting

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func mustParse(t testing.TB, text string) Rule {
	t.Helper()
	r, err := ParseRule([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func writeFile(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// dirNames lists the names in dir, sorted.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// TestLoadRulesBadFile: a directory with bad files loads the good ones and
// reports each bad one with its path and the field.
func TestLoadRulesBadFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cpu.json"), descHighCPU)
	writeFile(t, filepath.Join(dir, "portscan.yaml"), yamlPortScan)
	writeFile(t, filepath.Join(dir, "bad.json"), strings.Replace(descPortScan, "network.unique_dest_port_count", "network.unique_port_count", 1))
	writeFile(t, filepath.Join(dir, "broken.yml"), "name: [\n")
	writeFile(t, filepath.Join(dir, "cpu.yaml"), descHighCPU)               // same id as cpu.json
	writeFile(t, filepath.Join(dir, "other.json"), `{"id":"x","name":"n"}`) // id differs from the file name
	writeFile(t, filepath.Join(dir, "README.txt"), "not a rule")
	writeFile(t, filepath.Join(dir, ".hidden.json"), "{")
	writeFile(t, filepath.Join(dir, ruleTempPrefix+"abc-123.tmp"), "{") // left by a crash
	rs, errs := LoadRules(dir, testCatalog{})
	if rs == nil {
		t.Fatal(errs)
	}
	want := []string{
		"load rule " + filepath.Join(dir, "bad.json") + `: invalid rule: conditions[1].metric: "network.unique_port_count": unknown metric (GET /api/v1/metrics lists them)`,
		"load rule " + filepath.Join(dir, "broken.yml") + ": invalid rule: not valid YAML: line 1: did not find expected node content",
		"load rule " + filepath.Join(dir, "cpu.yaml") + `: id "cpu": already loaded from ` + filepath.Join(dir, "cpu.json"),
		"load rule " + filepath.Join(dir, "other.json") + `: invalid rule: id: "x": differs from the file name's "other" (the file name is the id)`,
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
		if !strings.Contains(e.Error(), "already loaded") && !errors.Is(e, ErrInvalid) {
			t.Errorf("%v is not ErrInvalid", e)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("errors\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	list := rs.List()
	cpu, scan := wantHighCPU, wantPortScan
	cpu.ID, scan.ID = "cpu", "portscan"
	if !reflect.DeepEqual(list, []Rule{cpu, scan}) {
		t.Fatalf("loaded %+v", list)
	}
	if c := rs.Compiled(); len(c) != 2 || c[1].GroupVars[0] != "src_ip" {
		t.Fatalf("compiled %+v", c)
	}
	if slices.Contains(dirNames(t, dir), ruleTempPrefix+"abc-123.tmp") {
		t.Error("a stale temporary file was left")
	}
}

func TestLoadRulesCreatesDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc", "alerts")
	rs, errs := LoadRules(dir, testCatalog{})
	if rs == nil || len(errs) != 0 || len(rs.List()) != 0 {
		t.Fatalf("%v %v", rs, errs)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Fatalf("dir not created: %v", err)
	}
	// A path that cannot be a directory: nil and the error.
	file := filepath.Join(t.TempDir(), "f")
	writeFile(t, file, "")
	if rs, errs := LoadRules(filepath.Join(file, "sub"), testCatalog{}); rs != nil || len(errs) != 1 {
		t.Fatalf("under a file: %v %v", rs, errs)
	}
}

// TestRulesPersist: changes are in the directory as <id>.json, nothing
// else is left there, and a new LoadRules sees the same set.
func TestRulesPersist(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "scan.yaml"), yamlPortScan)
	rs, errs := LoadRules(dir, testCatalog{})
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	var seen [][]*Compiled
	rs.OnChange(func(c []*Compiled) { seen = append(seen, c) })

	cpu, err := rs.Create(mustParse(t, descHighCPU))
	if err != nil {
		t.Fatal(err)
	}
	if len(cpu.ID) != 16 || !ValidRuleID(cpu.ID) {
		t.Fatalf("id %q", cpu.ID)
	}
	want := wantHighCPU
	want.ID = cpu.ID
	if !reflect.DeepEqual(cpu, want) {
		t.Fatalf("created %+v", cpu)
	}
	// An invalid rule changes nothing.
	bad := mustParse(t, descHighCPU)
	bad.Conditions[0].Metric = "foo.bar"
	if _, err := rs.Create(bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("create bad: %v", err)
	}
	if _, err := rs.Replace(cpu.ID, bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("replace bad: %v", err)
	}
	if _, err := rs.Replace("nosuch", want); !errors.Is(err, ErrNotFound) {
		t.Fatalf("replace unknown: %v", err)
	}
	if err := rs.Delete("nosuch"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete unknown: %v", err)
	}
	other := want
	other.ID = "zzz"
	if _, err := rs.Replace(cpu.ID, other); !errors.Is(err, ErrInvalid) {
		t.Fatalf("replace with another id: %v", err)
	}
	// Replacing the YAML rule writes scan.json and removes scan.yaml.
	scan := wantPortScan
	scan.ThrottleSec = 60
	got, err := rs.Replace("scan", scan)
	if err != nil {
		t.Fatal(err)
	}
	scan.ID = "scan"
	if !reflect.DeepEqual(got, scan) {
		t.Fatalf("replaced %+v", got)
	}
	if names, want := dirNames(t, dir), []string{cpu.ID + ".json", "scan.json"}; !slices.Equal(names, sortedCopy(want)) {
		t.Fatalf("dir holds %v, want %v", names, want)
	}
	tmp, err := rs.Create(mustParse(t, descHighCPU))
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Delete(tmp.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := rs.Get(tmp.ID); ok {
		t.Fatal("deleted rule still there")
	}
	if names := dirNames(t, dir); slices.Contains(names, tmp.ID+".json") || len(names) != 2 {
		t.Fatalf("dir after delete: %v", names)
	}

	// The callbacks saw the set at registration and after each of the 4 changes.
	if len(seen) != 5 || len(seen[0]) != 1 || len(seen[1]) != 2 || len(seen[4]) != 2 {
		t.Fatalf("OnChange saw %d sets", len(seen))
	}
	// Callers cannot change the stored rules through what they got.
	l := rs.List()
	l[0].Conditions[0].Threshold = -1
	l[0].Notifications = nil
	if g, _ := rs.Get(l[0].ID); g.Conditions[0].Threshold == -1 {
		t.Fatal("List shares memory with the set")
	}

	again, errs := LoadRules(dir, testCatalog{})
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if !reflect.DeepEqual(again.List(), rs.List()) {
		t.Fatalf("after reload\n%+v\nwant\n%+v", again.List(), rs.List())
	}
	if st, err := os.Stat(filepath.Join(dir, cpu.ID+".json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("rule file mode: %v %v", st, err)
	}
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// TestRulesConcurrent: creates, replaces and deletes from many goroutines
// while readers list the set and read every file of the directory: each
// file is a whole rule at every instant, and at the end the directory
// holds exactly the set.
func TestRulesConcurrent(t *testing.T) {
	dir := t.TempDir()
	rs, errs := LoadRules(dir, testCatalog{})
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	var last atomic.Pointer[[]*Compiled]
	rs.OnChange(func(c []*Compiled) { last.Store(&c) })
	const writers, perWriter = 8, 20
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var readerErr atomic.Value
	var reads atomic.Int64
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			es, _ := os.ReadDir(dir)
			for _, e := range es {
				if strings.HasPrefix(e.Name(), ".") {
					continue
				}
				data, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if errors.Is(err, os.ErrNotExist) {
					continue // deleted meanwhile
				}
				if err != nil {
					readerErr.Store(err)
					return
				}
				r, err := ParseRule(data)
				if err == nil {
					_, err = Compile(r, testCatalog{})
				}
				if err != nil {
					readerErr.Store(fmt.Errorf("%s: %w: %q", e.Name(), err, data))
					return
				}
				reads.Add(1)
			}
			rs.List()
			rs.Compiled()
		}
	}()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				r := mustParse(t, descPortScan)
				r.Name = fmt.Sprintf("w%d-%d", w, i)
				got, err := rs.Create(r)
				if err != nil {
					t.Error(err)
					return
				}
				r.ThrottleSec = i
				if _, err := rs.Replace(got.ID, r); err != nil {
					t.Error(err)
					return
				}
				if i%2 == 0 {
					if err := rs.Delete(got.ID); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(stop)
	rwg.Wait()
	if err := readerErr.Load(); err != nil {
		t.Fatal(err)
	}
	list := rs.List()
	if len(list) != writers*perWriter/2 {
		t.Fatalf("%d rules, want %d", len(list), writers*perWriter/2)
	}
	var wantNames []string
	for _, r := range list {
		wantNames = append(wantNames, r.ID+".json")
	}
	if names := dirNames(t, dir); !slices.Equal(names, sortedCopy(wantNames)) {
		t.Fatalf("dir holds %d names (temporary files left?), want %d", len(names), len(wantNames))
	}
	if c := *last.Load(); !reflect.DeepEqual(c, rs.Compiled()) {
		t.Fatalf("the last OnChange set has %d rules, the set %d", len(c), len(rs.Compiled()))
	}
	again, errs := LoadRules(dir, testCatalog{})
	if len(errs) != 0 || !reflect.DeepEqual(again.List(), list) {
		t.Fatalf("reload: %v", errs)
	}
	t.Logf("%d whole files read during the changes", reads.Load())
}

func TestRuleIDs(t *testing.T) {
	for id, ok := range map[string]bool{"portscan": true, "a-b_C9": true, "0123456789abcdef": true, "": false, "a.b": false,
		"../x": false, "active": false, "history": false, strings.Repeat("a", 64): true, strings.Repeat("a", 65): false} {
		if ValidRuleID(id) != ok {
			t.Errorf("ValidRuleID(%q) = %v", id, !ok)
		}
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "active.json"), descHighCPU)
	rs, errs := LoadRules(dir, testCatalog{})
	if len(errs) != 1 || len(rs.List()) != 0 || !strings.Contains(errs[0].Error(), "active.json: file name:") {
		t.Fatalf("active.json: %v", errs)
	}
}
