package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"regexp"
	"testing"
)

// TestLogFormat: the product's terminal lines, JSON under systemd, and a
// level that changes live.
func TestLogFormat(t *testing.T) {
	t.Setenv("INVOCATION_ID", "")
	t.Setenv("JOURNAL_STREAM", "")
	var buf bytes.Buffer
	lv := new(slog.LevelVar)
	log := newLogger(&buf, lv)
	log.Info("REST API server started on port 8080", "addr", "127.0.0.1:8080", "note", "two words")
	log.Debug("hidden")
	lv.Set(slog.LevelDebug)
	log.Debug("shown")
	want := regexp.MustCompile(`^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] \[INFO\] REST API server started on port 8080 addr=127.0.0.1:8080 note="two words"
\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] \[DEBUG\] shown
$`)
	if !want.Match(buf.Bytes()) {
		t.Errorf("text log:\n%s", buf.String())
	}

	t.Setenv("INVOCATION_ID", "0123")
	buf.Reset()
	newLogger(&buf, lv).Warn("capture stopped", "queue", 1)
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil || m["msg"] != "capture stopped" || m["level"] != "WARN" || m["queue"] != 1.0 {
		t.Errorf("journal log: %v %s", err, buf.String())
	}
}
