package httpd_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/netsentry/netsentry/httpd"
	"github.com/netsentry/netsentry/store"
	"github.com/netsentry/netsentry/store/remote"
)

// TestRemoteMetrics: a remote writer's counters in /metrics, labelled
// with the backend, promtool-clean. The writer is real, its backend
// down: the tick waits in the queue.
func TestRemoteMetrics(t *testing.T) {
	db, err := pebble.Open("q", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w, err := remote.Open(db, remote.Options{Backend: remote.VictoriaMetrics, URL: "http://127.0.0.1:1", Sensor: "s",
		QueueBytes: 1 << 20, MinBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Append(time.Now(), []store.Sample{{Name: "a", Value: 1}, {Name: "b", Value: 2}}); err != nil {
		t.Fatal(err)
	}
	ts := newTestServerWith(t, func(o *httpd.Options) { o.Remote = w })
	text := string(ts.do("GET", "/metrics", "", nil).body)
	for _, want := range []string{
		`netsentry_remote_samples_sent_total{backend="victoriametrics"} 0`,
		`netsentry_remote_samples_failed_total{backend="victoriametrics"} 0`,
		`netsentry_remote_samples_dropped_total{backend="victoriametrics"} 0`,
		`netsentry_remote_samples_queued{backend="victoriametrics"} 2`,
		`netsentry_remote_queue_capacity_bytes{backend="victoriametrics"} 1.048576e+06`,
		`netsentry_remote_last_sent_timestamp_seconds{backend="victoriametrics"} 0`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if !strings.Contains(text, `netsentry_remote_requests_total{backend="victoriametrics"} `) || !strings.Contains(text, `netsentry_remote_samples_retried_total{backend="victoriametrics"} `) {
		t.Error("/metrics lacks the request or retry counters")
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not installed (Debian package prometheus; make deps)")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
