package main

import (
	"context"
	"net"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/netsentry/netsentry/alerting"
	"github.com/netsentry/netsentry/engine/sampler"
	"github.com/netsentry/netsentry/httpd"
	"github.com/netsentry/netsentry/sensor"
)

// alertsCloseLimit bounds how long shutdown waits for queued
// notifications to leave.
const alertsCloseLimit = 3 * time.Second

// alerts is the daemon's alerting: the rule set (alerts.config_path, the
// API), the evaluator fed by the sensor's snapshots, the dispatcher that
// delivers its notifications.
type alerts struct {
	rules *alerting.Rules
	eval  *alerting.Evaluator
	disp  *alerting.Dispatcher
	sens  *sensor.Sensor
}

// EvalStats and ChannelStats implement httpd.AlertMetrics.
func (a *alerts) EvalStats() alerting.EvalStats {
	s := a.eval.Stats()
	s.FeedDropped = a.sens.AlertFeedDropped()
	return s
}
func (a *alerts) ChannelStats() []alerting.ChannelStats { return a.disp.Stats() }

// startAlerts loads the rules, starts the dispatcher and the feeder
// goroutine (on wg, until ctx ends). A rule file that does not load is
// logged with its path and the others load; a rules directory that cannot
// be made or read leaves alerting off (the API answers 503).
func (d *daemon) startAlerts(ctx context.Context, wg *sync.WaitGroup) {
	cfg := d.Config()
	hostNames := []string{}
	for n := range (sampler.Snapshot{}).Dotted() {
		hostNames = append(hostNames, n)
	}
	for i := range runtime.NumCPU() {
		hostNames = append(hostNames, "cpu.core."+strconv.Itoa(i)+".usage")
	}
	sort.Strings(hostNames)
	host := d.hostFlat
	cat := sensor.NewCatalog(hostNames, host)
	rules, errs := alerting.LoadRules(cfg.Alerts.ConfigPath, cat)
	for _, err := range errs {
		d.log.Error("alert rules", "err", err)
	}
	if rules == nil {
		d.log.Error("alerting is off: the rules directory cannot be used", "alerts.config_path", cfg.Alerts.ConfigPath)
		return
	}
	m := cfg.Alerts.SMTP
	external := ""
	if cfg.EnableAPI {
		external = "http://" + net.JoinHostPort(cfg.APIListen, strconv.Itoa(cfg.APIPort))
	}
	disp := alerting.NewDispatcher(alerting.NotifyOptions{Logger: d.log, ExternalURL: external,
		SMTP: alerting.SMTPConfig{Host: m.Host, Port: m.Port, Username: m.Username, Password: m.Password, From: m.From, TLS: m.TLS}})
	var defaults []alerting.Channel
	for _, ch := range cfg.Alerts.NotificationChannels {
		defaults = append(defaults, alerting.Channel{Type: ch.Type, Recipients: ch.Recipients, URL: ch.URL, Secret: ch.Secret})
	}
	ev := alerting.NewEvaluator(alerting.EvalOptions{DefaultChannels: defaults}, disp.Send)
	rules.OnChange(ev.SetRules)
	d.alerts = &alerts{rules: rules, eval: ev, disp: disp, sens: d.sensor}
	d.log.Info("alerting started", "rules", len(rules.List()), "dir", cfg.Alerts.ConfigPath)
	// The workers report what changed at every batch end, so that an alert
	// leaves within a batch of its packet (docs/alerting.md).
	d.sensor.EnableAlertFeed()
	// Files added, changed or removed in the rules directory are picked up
	// within alerting.DefaultReloadInterval (2 s).
	wg.Add(1)
	go func() {
		defer wg.Done()
		rules.Watch(ctx, 0, func(err error) { d.log.Error("alert rules", "err", err) })
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		sensor.RunAlerts(ctx, d.sensor, &sensor.AlertFeeder{Host: host}, ev)
	}()
}

// hostFlat returns the latest host sample's dotted metrics, nil when there
// are none.
func (d *daemon) hostFlat() map[string]float64 {
	if d.host == nil {
		return nil
	}
	_, flat, err := d.host.HostMetrics()
	if err != nil {
		return nil
	}
	return flat
}

// stopAlerts lets queued notifications leave, for at most alertsCloseLimit.
func (d *daemon) stopAlerts() {
	if d.alerts == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), alertsCloseLimit)
	defer cancel()
	if err := d.alerts.disp.Close(ctx); err != nil {
		d.log.Warn("alert notifications not all delivered", "err", err)
	}
}

// alertOptions sets the API's alerting fields (left nil when alerting is
// off: /api/v1/alerts answers 503).
func (d *daemon) alertOptions(o *httpd.Options) {
	if d.alerts == nil {
		return
	}
	o.Alerts, o.AlertState, o.AlertMetrics = d.alerts.rules, d.alerts.eval, d.alerts
}
