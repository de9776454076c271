// Package testcorpus finds the shared corpus of captures and its oracles
// for tests: `../shared` beside the module's checkout, located from the
// module root (the nearest go.mod above the test's working directory), or
// NETSENTRY_SHARED when set. A test that needs the corpus fails when it is
// missing; it never skips (TESTING.md: an oracle test whose data is
// missing fails).
package testcorpus

import (
	"os"
	"path/filepath"
	"testing"
)

// PcapsDir returns where the shared captures are expected, without
// checking that they are there (for package-level paths; the tests that
// read them fail through Files, Path or Require when they are missing).
func PcapsDir() string {
	if dir := os.Getenv("NETSENTRY_SHARED"); dir != "" {
		return filepath.Join(dir, "pcaps")
	}
	dir, err := os.Getwd()
	if err != nil {
		return "shared/pcaps"
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(dir), "shared", "pcaps")
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "shared/pcaps"
		}
		dir = up
	}
}

// Require fails the test when the shared captures are missing.
func Require(t testing.TB) {
	t.Helper()
	Pcaps(t)
}

// Root returns the module root: the nearest directory at or above the
// working directory that holds go.mod.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("testcorpus: working directory: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatalf("testcorpus: no go.mod above the working directory")
		}
		dir = up
	}
}

// Shared returns the shared directory (spec, check scripts, pcaps), or
// fails the test saying where it was looked for.
func Shared(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("NETSENTRY_SHARED")
	if dir == "" {
		dir = filepath.Join(filepath.Dir(Root(t)), "shared")
	}
	if st, err := os.Stat(filepath.Join(dir, "pcaps")); err != nil || !st.IsDir() {
		t.Fatalf("the shared corpus is missing: no %s (check out ../shared beside the module, or set NETSENTRY_SHARED)", filepath.Join(dir, "pcaps"))
	}
	return dir
}

// Pcaps returns the directory of the shared captures; oracle tables are
// in its oracle/ folder.
func Pcaps(t testing.TB) string {
	t.Helper()
	return filepath.Join(Shared(t), "pcaps")
}

// Files returns the captures of the corpus matching pattern (e.g.
// "*.pcap*"), failing when there are none.
func Files(t testing.TB, pattern string) []string {
	t.Helper()
	dir := Pcaps(t)
	files, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil || len(files) == 0 {
		t.Fatalf("no captures match %s in %s", pattern, dir)
	}
	return files
}

// Path returns the named file of the corpus (relative to pcaps/), failing
// when it does not exist.
func Path(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(Pcaps(t), name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("corpus file missing: %v", err)
	}
	return p
}
