package lint

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/netsentry/netsentry"

// allowed lists, for each of our packages, the packages of this module it
// may import (outside its tests). A package missing here may import nothing
// of ours. Sub-packages share their parent's rule unless listed.
var allowed = map[string][]string{
	"cmd":                 {"*"},
	"bench":               {"*"},
	"engine":              {"bpf", "decode", "flowtable", "configs", "engine"},
	"bpf":                 {},
	"decode":              {"decode"},
	"flowtable":           {"decode"},
	"store":               {"flowtable"},
	"store/remote":        {"store"},
	"alerting":            {},
	"httpd":               {"store", "alerting", "flowtable", "configs", "geo", "web"},
	"web":                 {}, // the dashboard's embedded assets
	"tuning":              {},
	"configs":             {},
	"geo":                 {"configs", "geo"},
	"internal/lint":       {},
	"internal/testcorpus": {},
	"engine/sampler":      {},
	"systemd":             {},
	"deploy":              {}, // manifests and their tests; no code
	"sensor":              {"engine", "flowtable", "configs", "httpd", "decode", "alerting", "store"},
}

// stdlibOnly lists packages whose non-test code may import the standard
// library only.
var stdlibOnly = []string{"decode"}

type pkg struct {
	ImportPath string
	Imports    []string
}

func listPackages(t *testing.T) []pkg {
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkg
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// rule returns the rule of the longest listed prefix of rel.
func rule(rel string) (string, []string) {
	best := ""
	for k := range allowed {
		if (rel == k || strings.HasPrefix(rel, k+"/")) && len(k) > len(best) {
			best = k
		}
	}
	return best, allowed[best]
}

func TestImportRules(t *testing.T) {
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		name, rules := rule(rel)
		if name == "" {
			t.Errorf("%s: no import rule; add it to allowed in %s", rel, "internal/lint/imports_test.go")
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module+"/") {
				if isStdlibOnly(rel) && strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
					t.Errorf("%s imports %s: this package may use the standard library only", rel, imp)
				}
				continue
			}
			target := strings.TrimPrefix(imp, module+"/")
			if target == "cmd" || strings.HasPrefix(target, "cmd/") || target == "bench" || strings.HasPrefix(target, "bench/") {
				if !strings.HasPrefix(rel, "bench") {
					t.Errorf("%s imports %s: nothing imports cmd or bench", rel, target)
				}
				continue
			}
			if !permitted(rules, target) {
				t.Errorf("%s imports %s: not allowed by the layout (allowed: %v)", rel, target, rules)
			}
		}
	}
}

func permitted(rules []string, target string) bool {
	for _, r := range rules {
		if r == "*" || target == r || strings.HasPrefix(target, r+"/") {
			return true
		}
	}
	return false
}

func isStdlibOnly(rel string) bool {
	for _, s := range stdlibOnly {
		if rel == s || strings.HasPrefix(rel, s+"/") {
			return true
		}
	}
	return false
}
