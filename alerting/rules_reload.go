package alerting

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultReloadInterval is how often Watch looks at the rules directory.
const DefaultReloadInterval = 2 * time.Second

// fileStat identifies the content of a rule file as it was read.
type fileStat struct {
	size  int64
	mtime int64
	sum   [32]byte // SHA-256 of the content
}

func statOf(fi os.FileInfo) fileStat {
	return fileStat{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
}

// sameFile reports whether a and b have the same size and modification time.
func sameFile(a, b fileStat) bool { return a.size == b.size && a.mtime == b.mtime }

// Reload reads the rules directory again: a rule file added is loaded, one
// changed is loaded in place of the rule it held, one removed removes its
// rule; the callbacks of OnChange get the new set when anything changed.
// A file that does not load is one error naming its path and its problems
// (each reported once until the file changes again), and the rule it held,
// if any, stays as it was. Files whose size and modification time are
// those last seen are not read. Hidden files (the temporary files of a
// write) are ignored.
func (r *Rules) Reload() []error {
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		return []error{fmt.Errorf("reload rules: %w", err)}
	}
	var errs []error
	r.mu.Lock()
	if r.bad == nil {
		r.bad = map[string]fileStat{}
	}
	changed := false
	seen := map[string]bool{}
	present := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		ext := filepath.Ext(name)
		if strings.HasPrefix(name, ".") || e.IsDir() || (ext != ".json" && ext != ".yaml" && ext != ".yml") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		path := filepath.Join(r.dir, name)
		present[path] = true
		cur := statOf(fi)
		report := func(err error) {
			if b, ok := r.bad[path]; !ok || !sameFile(b, cur) {
				errs = append(errs, err)
			}
			r.bad[path] = cur
		}
		id := strings.TrimSuffix(name, ext)
		if !ValidRuleID(id) {
			report(fmt.Errorf("load rule %s: file name: the rule's id is the name without %s: want 1 to 64 letters, digits, '-' or '_' (not active or history)", path, ext))
			continue
		}
		if seen[id] {
			report(fmt.Errorf("load rule %s: id %q: already loaded from %s", path, id, filepath.Join(r.dir, r.rules[id].file)))
			continue
		}
		seen[id] = true
		old, had := r.rules[id]
		if had && old.file == name && sameFile(old.stat, cur) {
			continue
		}
		if b, ok := r.bad[path]; ok && sameFile(b, cur) {
			continue // reported already; the rule (if any) stays as it was
		}
		comp, st, err := loadRuleFile(path, id, r.cat)
		if err != nil {
			report(fmt.Errorf("load rule %s: %w", path, err))
			continue
		}
		delete(r.bad, path)
		if had && old.file == name && old.stat.sum == st.sum {
			old.stat = st // touched, not changed
			r.rules[id] = old
			continue
		}
		r.rules[id] = storedRule{comp: comp, file: name, stat: st}
		changed = true
	}
	for id := range r.rules {
		if !seen[id] {
			delete(r.rules, id)
			changed = true
		}
	}
	for path := range r.bad {
		if !present[path] {
			delete(r.bad, path)
		}
	}
	if !changed {
		r.mu.Unlock()
		return errs
	}
	r.changedLocked()
	return errs
}

// Watch calls Reload every interval (DefaultReloadInterval when <= 0)
// until ctx ends, handing each error to report (on Watch's goroutine).
func (r *Rules) Watch(ctx context.Context, interval time.Duration, report func(error)) {
	if interval <= 0 {
		interval = DefaultReloadInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, err := range r.Reload() {
				if report != nil {
					report(err)
				}
			}
		}
	}
}
