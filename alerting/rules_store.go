package alerting

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// MaxRuleFileBytes is the largest rule file LoadRules reads.
const MaxRuleFileBytes = 1 << 20

// ruleTempPrefix starts the name of the temporary files of a write; such
// files are hidden, never loaded, and removed by LoadRules (a crash leaves
// them behind).
const ruleTempPrefix = ".rule-"

// Rules is the rule set: loaded from a directory (one .json/.yaml/.yml file per rule; a bad file is
// reported with its path and field and the others still load), and changed over the API; every
// change is written atomically into the directory (temp file + rename), so rules persist across
// restarts. Safe for concurrent use; OnChange callbacks get the new compiled set.
type Rules struct {
	dir string
	cat Catalog

	mu    sync.Mutex // serialises changes; guards rules, set, seq
	rules map[string]storedRule
	set   []*Compiled         // sorted by name, then ID; replaced whole on change
	seq   uint64              // changes made
	bad   map[string]fileStat // files that did not load, as they were then (Reload)

	notifyMu sync.Mutex // guards subs, sentSeq, sentSet; held while callbacks run
	subs     []func([]*Compiled)
	sentSeq  uint64
	sentSet  []*Compiled
}

type storedRule struct {
	comp *Compiled
	file string   // base name of its file in dir
	stat fileStat // of that file when it was read or written (Reload)
}

// LoadRules reads every rule file of dir (creating dir when it is missing)
// and compiles it against cat. Each file that cannot be read, parsed or
// compiled is one error naming its path and its problems; the others load.
// When dir itself cannot be created or read, it returns nil and that error.
func LoadRules(dir string, cat Catalog) (*Rules, []error) {
	if dir == "" {
		return nil, []error{errors.New("load rules: no directory")}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, []error{fmt.Errorf("load rules: %w", err)}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, []error{fmt.Errorf("load rules: %w", err)}
	}
	r := &Rules{dir: dir, cat: cat, rules: map[string]storedRule{}, bad: map[string]fileStat{}}
	var errs []error
	markBad := func(path string, e os.DirEntry) {
		if fi, err := e.Info(); err == nil {
			r.bad[path] = statOf(fi)
		}
	}
	// ReadDir sorts by name: of "x.json" and "x.yaml", the .json loads.
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ruleTempPrefix) && strings.HasSuffix(name, ".tmp") && e.Type().IsRegular() {
			os.Remove(filepath.Join(dir, name))
			continue
		}
		ext := filepath.Ext(name)
		if strings.HasPrefix(name, ".") || e.IsDir() || (ext != ".json" && ext != ".yaml" && ext != ".yml") {
			continue
		}
		path := filepath.Join(dir, name)
		id := strings.TrimSuffix(name, ext)
		if !ValidRuleID(id) {
			errs = append(errs, fmt.Errorf("load rule %s: file name: the rule's id is the name without %s: want 1 to 64 letters, digits, '-' or '_' (not active or history)", path, ext))
			markBad(path, e)
			continue
		}
		if old, ok := r.rules[id]; ok {
			errs = append(errs, fmt.Errorf("load rule %s: id %q: already loaded from %s", path, id, filepath.Join(dir, old.file)))
			markBad(path, e)
			continue
		}
		comp, st, err := loadRuleFile(path, id, cat)
		if err != nil {
			errs = append(errs, fmt.Errorf("load rule %s: %w", path, err))
			markBad(path, e)
			continue
		}
		r.rules[id] = storedRule{comp: comp, file: name, stat: st}
	}
	r.set = r.sortedLocked()
	r.sentSet = r.set
	return r, errs
}

func loadRuleFile(path, id string, cat Catalog) (*Compiled, fileStat, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileStat{}, err
	}
	var st fileStat
	if fi, err := f.Stat(); err == nil {
		st = statOf(fi)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxRuleFileBytes+1))
	f.Close()
	if err != nil {
		return nil, st, err
	}
	st.sum = sha256.Sum256(data)
	if len(data) > MaxRuleFileBytes {
		return nil, st, fmt.Errorf("larger than %d bytes", MaxRuleFileBytes)
	}
	rule, err := ParseRule(data)
	if err != nil {
		return nil, st, err
	}
	if rule.ID != "" && rule.ID != id {
		return nil, st, &RuleError{Problems: []string{fmt.Sprintf("id: %q: differs from the file name's %q (the file name is the id)", rule.ID, id)}}
	}
	rule.ID = id
	c, err := Compile(rule, cat)
	return c, st, err
}

// Dir returns the directory of the rule files.
func (r *Rules) Dir() string { return r.dir }

// List returns copies of every rule, sorted by name, then ID.
func (r *Rules) List() []Rule {
	r.mu.Lock()
	set := r.set
	r.mu.Unlock()
	out := make([]Rule, len(set))
	for i, c := range set {
		out[i] = cloneRule(c.Rule)
	}
	return out
}

// Get returns a copy of the rule with that ID.
func (r *Rules) Get(id string) (Rule, bool) {
	r.mu.Lock()
	s, ok := r.rules[id]
	r.mu.Unlock()
	if !ok {
		return Rule{}, false
	}
	return cloneRule(s.comp.Rule), true
}

// Compiled returns the compiled rules, sorted as List; the slice is the
// caller's, the *Compiled are shared and must not be changed.
func (r *Rules) Compiled() []*Compiled {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Compiled(nil), r.set...)
}

// OnChange registers f, calls it at once with the current set and after
// every change with the new one (see doc.go for the ordering). f must not
// change the rules or call OnChange.
func (r *Rules) OnChange(f func([]*Compiled)) {
	r.notifyMu.Lock()
	defer r.notifyMu.Unlock()
	r.subs = append(r.subs, f)
	f(append([]*Compiled(nil), r.sentSet...))
}

// Create adds rule with a new ID (an ID in rule is ignored) and writes its
// file; it returns the rule as stored (normalised, with its ID). An
// invalid rule is a *RuleError (errors.Is ErrInvalid) and changes nothing.
func (r *Rules) Create(rule Rule) (Rule, error) {
	rule.ID = ""
	comp, err := Compile(rule, r.cat)
	if err != nil {
		return Rule{}, err
	}
	r.mu.Lock()
	var id string
	for {
		id, err = newRuleID()
		if err != nil {
			r.mu.Unlock()
			return Rule{}, fmt.Errorf("create rule: %w", err)
		}
		if _, taken := r.rules[id]; !taken {
			break
		}
	}
	comp.Rule.ID = id
	st, err := r.writeLocked(id, comp.Rule)
	if err != nil {
		r.mu.Unlock()
		return Rule{}, fmt.Errorf("create rule: %w", err)
	}
	r.rules[id] = storedRule{comp: comp, file: id + ".json", stat: st}
	r.changedLocked()
	return cloneRule(comp.Rule), nil
}

// Replace puts rule in the place of the rule with that ID (rule.ID must be
// "" or the same) and rewrites its file as <id>.json. ErrNotFound when
// there is no such rule; an invalid rule is a *RuleError.
func (r *Rules) Replace(id string, rule Rule) (Rule, error) {
	if _, ok := r.Get(id); !ok {
		return Rule{}, fmt.Errorf("replace rule %q: %w", id, ErrNotFound)
	}
	if rule.ID != "" && rule.ID != id {
		return Rule{}, &RuleError{Problems: []string{fmt.Sprintf("id: %q: differs from the id %q of the rule it replaces", rule.ID, id)}}
	}
	rule.ID = id
	comp, err := Compile(rule, r.cat)
	if err != nil {
		return Rule{}, err
	}
	r.mu.Lock()
	old, ok := r.rules[id]
	if !ok { // deleted meanwhile
		r.mu.Unlock()
		return Rule{}, fmt.Errorf("replace rule %q: %w", id, ErrNotFound)
	}
	st, err := r.writeLocked(id, comp.Rule)
	if err != nil {
		r.mu.Unlock()
		return Rule{}, fmt.Errorf("replace rule: %w", err)
	}
	if old.file != id+".json" {
		if err := os.Remove(filepath.Join(r.dir, old.file)); err == nil {
			syncRuleDir(r.dir)
		}
	}
	r.rules[id] = storedRule{comp: comp, file: id + ".json", stat: st}
	r.changedLocked()
	return cloneRule(comp.Rule), nil
}

// Delete removes the rule with that ID and its file; ErrNotFound when
// there is none.
func (r *Rules) Delete(id string) error {
	r.mu.Lock()
	old, ok := r.rules[id]
	if !ok {
		r.mu.Unlock()
		return fmt.Errorf("delete rule %q: %w", id, ErrNotFound)
	}
	if err := os.Remove(filepath.Join(r.dir, old.file)); err != nil && !errors.Is(err, os.ErrNotExist) {
		r.mu.Unlock()
		return fmt.Errorf("delete rule: %w", err)
	}
	syncRuleDir(r.dir) // the file is gone: the change is made (see writeLocked)
	delete(r.rules, id)
	r.changedLocked()
	return nil
}

// changedLocked publishes the new set, unlocks r.mu and runs the callbacks
// (unless a later change has already delivered a newer set).
func (r *Rules) changedLocked() {
	r.set = r.sortedLocked()
	r.seq++
	seq, set := r.seq, r.set
	r.mu.Unlock()
	r.notifyMu.Lock()
	defer r.notifyMu.Unlock()
	if seq <= r.sentSeq {
		return
	}
	r.sentSeq, r.sentSet = seq, set
	for _, f := range r.subs {
		f(append([]*Compiled(nil), set...))
	}
}

func (r *Rules) sortedLocked() []*Compiled {
	set := make([]*Compiled, 0, len(r.rules))
	for _, s := range r.rules {
		set = append(set, s.comp)
	}
	sort.Slice(set, func(i, j int) bool {
		if set[i].Rule.Name != set[j].Rule.Name {
			return set[i].Rule.Name < set[j].Rule.Name
		}
		return set[i].Rule.ID < set[j].Rule.ID
	})
	return set
}

// writeLocked writes rule as dir/<id>.json atomically: a temporary file in
// dir, fsync, rename, fsync of dir.
func (r *Rules) writeLocked(id string, rule Rule) (fileStat, error) {
	data, err := json.MarshalIndent(rule, "", "  ")
	if err != nil {
		return fileStat{}, fmt.Errorf("encode rule: %w", err)
	}
	data = append(data, '\n')
	f, err := os.CreateTemp(r.dir, ruleTempPrefix+id+"-*.tmp") // mode 0600
	if err != nil {
		return fileStat{}, fmt.Errorf("write rule: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	var st fileStat
	if err == nil {
		var fi os.FileInfo
		if fi, err = os.Stat(tmp); err == nil {
			st = statOf(fi)
			st.sum = sha256.Sum256(data)
			err = os.Rename(tmp, filepath.Join(r.dir, id+".json"))
		}
	}
	if err != nil {
		os.Remove(tmp)
		return fileStat{}, fmt.Errorf("write rule: %w", err)
	}
	// The rename is done: the change is made, whether or not the directory
	// reaches the disk now (the next write or the system's flush takes it).
	syncRuleDir(r.dir)
	return st, nil
}

func syncRuleDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// newRuleID returns 16 random hex digits.
func newRuleID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}
