package httpd_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/netsentry/netsentry/alerting"
	"github.com/netsentry/netsentry/httpd"
)

type fakeAlertMetrics struct{}

func (fakeAlertMetrics) EvalStats() alerting.EvalStats {
	return alerting.EvalStats{Rules: 2, Instances: 7, Firing: 1, Overflow: 3, Signals: 1000, Throttled: 4}
}

func (fakeAlertMetrics) ChannelStats() []alerting.ChannelStats {
	return []alerting.ChannelStats{
		{Type: "webhook", Target: "http://10.0.0.1:9/a", Sent: 5, Failed: 1, Retried: 2, Queued: 1},
		{Type: "webhook", Target: "http://10.0.0.2:9/b", Sent: 2, Dropped: 6},
		{Type: "email", Target: "a@example.com", Sent: 1},
	}
}

// TestAlertMetrics: the evaluator's and the notifiers' counters in
// /metrics, summed per channel type (no URL as a label), promtool-clean.
func TestAlertMetrics(t *testing.T) {
	ts := newTestServerWith(t, func(o *httpd.Options) { o.AlertMetrics = fakeAlertMetrics{} })
	text := string(ts.do("GET", "/metrics", "", nil).body)
	for _, want := range []string{
		`netsentry_alert_notifications_total{channel_type="webhook",result="sent"} 7`,
		`netsentry_alert_notifications_total{channel_type="webhook",result="failed"} 1`,
		`netsentry_alert_notifications_total{channel_type="webhook",result="dropped"} 6`,
		`netsentry_alert_notifications_total{channel_type="email",result="sent"} 1`,
		`netsentry_alert_notifications_total{channel_type="prometheus-alertmanager",result="sent"} 0`,
		`netsentry_alert_notification_retries_total{channel_type="webhook"} 2`,
		`netsentry_alert_notification_queue_length{channel_type="webhook"} 1`,
		`netsentry_alert_rules 2`, `netsentry_alert_instances 7`, `netsentry_alert_instances_firing 1`,
		`netsentry_alert_instance_overflow_total 3`, `netsentry_alert_signals_total 1000`, `netsentry_alert_throttled_total 4`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(text, "10.0.0.1") {
		t.Error("a channel URL as a label")
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
