package configs

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"

	"go.yaml.in/yaml/v3"
)

// WriteFile replaces path with data atomically: a temporary file in the
// same directory, synced, renamed over path, and the directory synced, so
// that the file is whole at every instant, also across a crash. The mode of
// the file it replaces is kept (0640 for a new file).
func WriteFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	mode := os.FileMode(0o640)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write config: %w", err)
	}
	if df, err := os.Open(dir); err == nil {
		df.Sync()
		df.Close()
	}
	return nil
}

// Diff lists, sorted, the dotted keys (down to the second level, e.g.
// "performance.threads") whose values differ between a and b.
func Diff(a, b Config) []string {
	ma, mb := keyMap(a), keyMap(b)
	var out []string
	for _, k := range unionKeys(ma, mb) {
		va, vb := ma[k], mb[k]
		sa, aok := va.(map[string]any)
		sb, bok := vb.(map[string]any)
		if aok && bok {
			for _, sk := range unionKeys(sa, sb) {
				if !reflect.DeepEqual(sa[sk], sb[sk]) {
					out = append(out, k+"."+sk)
				}
			}
			continue
		}
		if !reflect.DeepEqual(va, vb) {
			out = append(out, k)
		}
	}
	return out
}

// keyMap is c as the generic tree its YAML form decodes to.
func keyMap(c Config) map[string]any {
	data, err := Encode(c)
	if err != nil {
		panic("BUG: encode config: " + err.Error())
	}
	m := map[string]any{}
	if err := yaml.Unmarshal(data, &m); err != nil {
		panic("BUG: decode encoded config: " + err.Error())
	}
	return m
}

func unionKeys(a, b map[string]any) []string {
	var ks []string
	for _, m := range []map[string]any{a, b} {
		for k := range m {
			if !slices.Contains(ks, k) {
				ks = append(ks, k)
			}
		}
	}
	slices.Sort(ks)
	return ks
}
