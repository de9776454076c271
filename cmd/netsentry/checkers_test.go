package main

import (
	"io"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/netsentry/netsentry/internal/testcorpus"
)

// sharedDir is the shared corpus and its judging scripts.
var sharedDir = filepath.Dir(testcorpus.PcapsDir())

// TestSharedAppChecker replays every corpus capture with the embedded
// default configuration (as a user runs it) and runs the shared judging
// script ../shared/check/compare_app.py on the flow records: every SNI, DNS
// name and HTTP host tshark extracts must be on a flow, and nDPI's protocol
// per flow must agree. (Flow counters are compared with tshark's tables by
// the engine's corpus test.)
func TestSharedAppChecker(t *testing.T) {
	if testing.Short() {
		t.Skip("runs tshark on the whole corpus")
	}
	for _, tool := range []string{"python3", "tshark"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	files := testcorpus.Files(t, "*.pcap*")
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), name+".jsonl")
			if rc := run([]string{"--replay", f, "--flows-out", out}, io.Discard, io.Discard); rc != 0 {
				t.Fatalf("replay exit %d", rc)
			}
			res, err := exec.Command("python3", filepath.Join(sharedDir, "check", "compare_app.py"), f, out).CombinedOutput()
			if err != nil {
				t.Errorf("compare_app.py: %v\n%s", err, res)
			}
		})
	}
}
