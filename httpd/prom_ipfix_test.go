package httpd_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/netsentry/netsentry/httpd"
)

type fakeExport []httpd.CollectorStats

func (f fakeExport) CollectorStats() []httpd.CollectorStats { return f }

// TestIPFIXMetrics: each collector's counters in /metrics, labelled by
// its sink name and transport (no address), promtool-clean.
func TestIPFIXMetrics(t *testing.T) {
	ts := newTestServerWith(t, func(o *httpd.Options) {
		o.Export = fakeExport{
			{Name: "ipfix0", Address: "10.9.9.9:4739", Transport: "udp", Messages: 3, Records: 40, Bytes: 4000, Templates: 1, Connects: 1, Connected: true},
			{Name: "ipfix1", Address: "10.9.9.8:4739", Transport: "tcp", Dropped: 7, Errors: 2},
		}
	})
	text := string(ts.do("GET", "/metrics", "", nil).body)
	for _, want := range []string{
		`netsentry_ipfix_messages_sent_total{collector="ipfix0",transport="udp"} 3`,
		`netsentry_ipfix_records_sent_total{collector="ipfix0",transport="udp"} 40`,
		`netsentry_ipfix_sent_bytes_total{collector="ipfix0",transport="udp"} 4000`,
		`netsentry_ipfix_template_sets_sent_total{collector="ipfix0",transport="udp"} 1`,
		`netsentry_ipfix_connected{collector="ipfix0",transport="udp"} 1`,
		`netsentry_ipfix_records_dropped_total{collector="ipfix1",transport="tcp"} 7`,
		`netsentry_ipfix_errors_total{collector="ipfix1",transport="tcp"} 2`,
		`netsentry_ipfix_connected{collector="ipfix1",transport="tcp"} 0`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(text, "10.9.9") {
		t.Error("a collector address as a label")
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
