package httpd

import "github.com/netsentry/netsentry/alerting"

// AlertMetrics is what /metrics reads of alerting: the evaluator's and the
// dispatcher's counters (the daemon adapts *alerting.Evaluator and
// *alerting.Dispatcher). Both calls must be safe from any goroutine.
type AlertMetrics interface {
	EvalStats() alerting.EvalStats
	ChannelStats() []alerting.ChannelStats
}

// alertChannelTypes are the channel_type label values, all written so that
// the series exist before the first notification.
var alertChannelTypes = []string{"email", "webhook", "prometheus-alertmanager"}

// writeAlerts writes the alert evaluator's and the notifiers' counters,
// summed per channel type (channel URLs and recipients are not labels).
func (s *Server) writeAlerts(p *promWriter) {
	if s.opt.AlertMetrics == nil {
		return
	}
	ev := s.opt.AlertMetrics.EvalStats()
	type sums struct{ sent, failed, dropped, retried, queued float64 }
	by := map[string]*sums{}
	for _, t := range alertChannelTypes {
		by[t] = &sums{}
	}
	for _, c := range s.opt.AlertMetrics.ChannelStats() {
		x := by[c.Type]
		if x == nil {
			continue // not a type the rules accept
		}
		x.sent += float64(c.Sent)
		x.failed += float64(c.Failed)
		x.dropped += float64(c.Dropped)
		x.retried += float64(c.Retried)
		x.queued += float64(c.Queued)
	}
	p.family("netsentry_alert_notifications_total", "counter",
		"Alert notifications per channel type: result sent (delivered), failed (gave up after retries or a permanent error) or dropped (the channel's queue was full).")
	for _, t := range alertChannelTypes {
		p.sample("netsentry_alert_notifications_total", by[t].sent, "channel_type", t, "result", "sent")
		p.sample("netsentry_alert_notifications_total", by[t].failed, "channel_type", t, "result", "failed")
		p.sample("netsentry_alert_notifications_total", by[t].dropped, "channel_type", t, "result", "dropped")
	}
	p.family("netsentry_alert_notification_retries_total", "counter", "Delivery attempts after the first, per channel type.")
	for _, t := range alertChannelTypes {
		p.sample("netsentry_alert_notification_retries_total", by[t].retried, "channel_type", t)
	}
	p.family("netsentry_alert_notification_queue_length", "gauge", "Notifications waiting in the channels' queues, per channel type.")
	for _, t := range alertChannelTypes {
		p.sample("netsentry_alert_notification_queue_length", by[t].queued, "channel_type", t)
	}
	p.family("netsentry_alert_rules", "gauge", "Alert rules evaluated.")
	p.sample("netsentry_alert_rules", float64(ev.Rules))
	p.family("netsentry_alert_instances", "gauge", "Live alert instances, one per (rule, group key).")
	p.sample("netsentry_alert_instances", float64(ev.Instances))
	p.family("netsentry_alert_instances_firing", "gauge", "Alert instances firing now.")
	p.sample("netsentry_alert_instances_firing", float64(ev.Firing))
	p.family("netsentry_alert_instance_overflow_total", "counter", "New group keys that found the instance cap full (an idle instance evicted, or the signal refused).")
	p.sample("netsentry_alert_instance_overflow_total", float64(ev.Overflow))
	p.family("netsentry_alert_signals_total", "counter", "Signals the evaluator ingested.")
	p.sample("netsentry_alert_signals_total", float64(ev.Signals))
	p.family("netsentry_alert_feed_dropped_total", "counter", "Workers' reports to the alert evaluator lost to a full feed ring (the next report or snapshot makes up for them).")
	p.sample("netsentry_alert_feed_dropped_total", float64(ev.FeedDropped))
	p.family("netsentry_alert_throttled_total", "counter", "Firing notifications held back by a rule's throttle_sec.")
	p.sample("netsentry_alert_throttled_total", float64(ev.Throttled))
}
