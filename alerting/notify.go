package alerting

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Channel types a Dispatcher delivers to.
const (
	chanEmail        = "email"
	chanWebhook      = "webhook"
	chanAlertmanager = "prometheus-alertmanager"
)

// Defaults of NotifyOptions (used where a field is zero).
const (
	DefaultNotifyTimeout    = 10 * time.Second
	DefaultNotifyRetries    = 5
	DefaultNotifyQueueSize  = 256
	DefaultNotifyMinBackoff = 500 * time.Millisecond
	DefaultNotifyMaxBackoff = 30 * time.Second
)

// SMTP TLS policies (SMTPConfig.TLS).
const (
	SMTPTLSMandatory     = "mandatory"     // STARTTLS or fail (the default)
	SMTPTLSOpportunistic = "opportunistic" // STARTTLS when the server offers it, else plain text
	SMTPTLSNone          = "none"          // never STARTTLS
)

// SMTPConfig is the mail server email channels send through.
type SMTPConfig struct {
	Host     string `json:"host" yaml:"host"`
	Port     int    `json:"port,omitempty" yaml:"port,omitempty"`         // default 587
	Username string `json:"username,omitempty" yaml:"username,omitempty"` // "" = no AUTH
	Password string `json:"password,omitempty" yaml:"password,omitempty"`
	From     string `json:"from" yaml:"from"`
	// TLS is the STARTTLS policy: mandatory (default) | opportunistic | none.
	TLS string `json:"tls,omitempty" yaml:"tls,omitempty"`
	// TLSConfig overrides the client's TLS settings (root CAs, server name); nil: system roots
	// and Host as the server name.
	TLSConfig *tls.Config `json:"-" yaml:"-"`
}

// NotifyOptions configures a Dispatcher. Zero fields take the defaults above.
type NotifyOptions struct {
	Timeout   time.Duration // per attempt (default 10 s)
	Retries   int           // default 5, exponential backoff with jitter, capped; < 0: no retry
	QueueSize int           // per channel; full: dropped and counted
	SMTP      SMTPConfig    // host, port, username, password, from, STARTTLS policy
	Logger    *slog.Logger

	// MinBackoff is the wait before the first retry (default 500 ms); each further retry
	// doubles it up to MaxBackoff (default 30 s). The wait drawn is uniform in [d/2, d).
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// ExternalURL is this sensor's API base URL: the webhook's externalURL, and with
	// "/api/v1/alerts/<rule id>" each alert's generatorURL. "" leaves both empty.
	ExternalURL string
}

// ChannelStats are one channel's delivery counters. Sent, Failed, Retried and Dropped count
// notifications (Retried: attempts after the first); Queued is the queue's length now.
type ChannelStats struct {
	Type    string // email | webhook | prometheus-alertmanager
	Target  string // URL, or the recipients joined by ","
	Sent    uint64
	Failed  uint64 // gave up: out of retries, an error not worth retrying, or closed
	Retried uint64
	Dropped uint64 // the queue was full (or the Dispatcher closed) when Send was called
	Queued  int
}

// notifier delivers one notification in one attempt. retry reports whether a failure is
// worth another attempt (network errors, timeouts, 5xx, 429; not other 4xx).
type notifier interface {
	notify(ctx context.Context, n Notification) (retry bool, err error)
}

// Dispatcher delivers notifications, one bounded queue and goroutine per channel. Safe for
// concurrent use.
//
// Threading and lifetimes: Send takes a short mutex (the channel map) and never waits on the
// network; a channel's queue and goroutine are made on its first Send and live until Close.
// Each goroutine delivers its queue in order, one notification at a time, so a dead or slow
// receiver holds up only its own queue (which then fills and drops). The Notification is kept
// until delivered: callers must not change its maps afterwards. Stats may be called at any
// time, also after Close.
type Dispatcher struct {
	opt    NotifyOptions
	log    *slog.Logger
	client *http.Client

	mu     sync.Mutex
	chans  map[string]*channelQueue
	order  []*channelQueue // creation order, for Stats
	closed bool
	wg     sync.WaitGroup

	stop   chan struct{} // closed when Close gives up waiting: attempts and backoffs abort
	stopCt context.Context
	cancel context.CancelFunc
}

type channelQueue struct {
	typ, target string
	q           chan Notification
	n           notifier

	sent, failed, retried, dropped atomic.Uint64
}

// NewDispatcher delivers notifications, one bounded queue and goroutine per channel (keyed by
// type+URL/recipients), so a dead or slow receiver delays nothing else. Send never blocks.
func NewDispatcher(opt NotifyOptions) *Dispatcher {
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultNotifyTimeout
	}
	if opt.Retries == 0 {
		opt.Retries = DefaultNotifyRetries
	} else if opt.Retries < 0 {
		opt.Retries = 0
	}
	if opt.QueueSize <= 0 {
		opt.QueueSize = DefaultNotifyQueueSize
	}
	if opt.MinBackoff <= 0 {
		opt.MinBackoff = DefaultNotifyMinBackoff
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = DefaultNotifyMaxBackoff
	}
	if opt.MaxBackoff < opt.MinBackoff {
		opt.MaxBackoff = opt.MinBackoff
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 4
	ctx, cancel := context.WithCancel(context.Background())
	return &Dispatcher{
		opt:    opt,
		log:    opt.Logger,
		client: &http.Client{Transport: tr},
		chans:  make(map[string]*channelQueue),
		stop:   make(chan struct{}),
		stopCt: ctx,
		cancel: cancel,
	}
}

// notifyChannelKey names a channel's queue: its type and its URL, or its recipients sorted.
func notifyChannelKey(c Channel) (typ, target string) {
	typ = strings.ToLower(strings.TrimSpace(c.Type))
	if typ == chanEmail {
		r := append([]string(nil), c.Recipients...)
		sort.Strings(r)
		return typ, strings.Join(r, ",")
	}
	return typ, c.URL
}

// Send queues n for its channel and returns at once; a full queue (or a closed Dispatcher)
// drops it and counts it in Dropped. An unknown channel type is logged and counted as failed.
func (d *Dispatcher) Send(n Notification) {
	typ, target := notifyChannelKey(n.Channel)
	key := typ + "\x00" + target + "\x00" + n.Channel.Secret
	d.mu.Lock()
	c := d.chans[key]
	if c == nil {
		c = d.newQueue(typ, target, n.Channel)
		d.chans[key] = c
		d.order = append(d.order, c)
		if c.n != nil && !d.closed {
			d.wg.Add(1)
			go d.run(c)
		}
	}
	closed := d.closed
	if c.n == nil {
		d.mu.Unlock()
		c.failed.Add(1)
		d.log.Warn("notify: unknown channel type", "type", n.Channel.Type)
		return
	}
	if closed {
		d.mu.Unlock()
		c.dropped.Add(1)
		return
	}
	select {
	case c.q <- n:
	default:
		c.dropped.Add(1)
	}
	d.mu.Unlock()
}

func (d *Dispatcher) newQueue(typ, target string, ch Channel) *channelQueue {
	c := &channelQueue{typ: typ, target: target, q: make(chan Notification, d.opt.QueueSize)}
	switch typ {
	case chanEmail:
		c.n = &emailNotifier{smtp: d.opt.SMTP, recipients: ch.Recipients}
	case chanWebhook:
		c.n = &webhookNotifier{client: d.client, url: ch.URL, secret: ch.Secret, externalURL: d.opt.ExternalURL}
	case chanAlertmanager:
		c.n = newAlertmanagerNotifier(d.client, ch.URL, d.opt.ExternalURL, d.log)
	}
	return c
}

// run is a channel's goroutine: it delivers its queue in order until the queue is closed.
func (d *Dispatcher) run(c *channelQueue) {
	defer d.wg.Done()
	for n := range c.q {
		d.deliver(c, n)
	}
}

// deliver makes up to 1+Retries attempts, each bounded by Timeout, waiting an exponential,
// jittered and capped backoff between them.
func (d *Dispatcher) deliver(c *channelQueue, n Notification) {
	for attempt := 0; ; attempt++ {
		if d.stopCt.Err() != nil {
			c.failed.Add(1)
			return
		}
		ctx, cancel := context.WithTimeout(d.stopCt, d.opt.Timeout)
		retry, err := c.n.notify(ctx, n)
		cancel()
		if err == nil {
			c.sent.Add(1)
			return
		}
		if !retry || attempt >= d.opt.Retries {
			c.failed.Add(1)
			d.log.Warn("notify: giving up", "channel_type", c.typ, "target", redactTarget(c.target),
				"rule", n.Rule, "attempts", attempt+1, "err", err)
			return
		}
		c.retried.Add(1)
		d.log.Debug("notify: attempt failed, will retry", "channel_type", c.typ,
			"target", redactTarget(c.target), "attempt", attempt+1, "err", err)
		t := time.NewTimer(d.backoff(attempt))
		select {
		case <-t.C:
		case <-d.stop:
			t.Stop()
			c.failed.Add(1)
			return
		}
	}
}

// backoff is the wait after attempt (0-based): MinBackoff*2^attempt capped at MaxBackoff, drawn
// uniformly in [d/2, d) so that channels failing together do not retry together.
func (d *Dispatcher) backoff(attempt int) time.Duration {
	b := d.opt.MinBackoff
	for i := 0; i < attempt && b < d.opt.MaxBackoff; i++ {
		b *= 2
	}
	if b > d.opt.MaxBackoff {
		b = d.opt.MaxBackoff
	}
	half := b / 2
	return half + rand.N(b-half)
}

// Stats returns every channel's counters, in the order the channels were first sent to.
// Suggested /metrics families (labels channel_type only, never a URL or an address):
//
//	netsentry_alert_notifications_total{channel_type,result="sent|failed|dropped"}
//	netsentry_alert_notification_retries_total{channel_type}
//	netsentry_alert_notification_queue_length{channel_type}
func (d *Dispatcher) Stats() []ChannelStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]ChannelStats, 0, len(d.order))
	for _, c := range d.order {
		out = append(out, ChannelStats{
			Type: c.typ, Target: redactTarget(c.target),
			Sent: c.sent.Load(), Failed: c.failed.Load(), Retried: c.retried.Load(),
			Dropped: c.dropped.Load(), Queued: len(c.q),
		})
	}
	return out
}

// Close stops taking notifications and waits for the queued ones to be delivered (or given
// up) until ctx is done; then it aborts attempts and backoffs in progress, counts what is
// left as failed, and returns ctx's error.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	for _, c := range d.order {
		if c.n != nil {
			close(c.q)
		}
	}
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("close dispatcher: %w", ctx.Err())
		close(d.stop)
		d.cancel()
		<-done
	}
	d.cancel()
	return err
}

// redactTarget drops the userinfo and query of a URL target (they may hold credentials).
func redactTarget(target string) string {
	if i := strings.Index(target, "://"); i >= 0 {
		rest := target[i+3:]
		if at := strings.IndexByte(rest, '@'); at >= 0 && at < strings.IndexAny(rest+"/", "/") {
			target = target[:i+3] + rest[at+1:]
		}
	}
	if q := strings.IndexByte(target, '?'); q >= 0 {
		target = target[:q]
	}
	return target
}

// retryableStatus reports whether an HTTP status is worth another attempt: 5xx and 429.
func retryableStatus(code int) bool {
	return code >= 500 || code == http.StatusTooManyRequests
}

// errStatus is a non-2xx answer.
type errStatus struct {
	code int
	body string
}

func (e *errStatus) Error() string {
	if e.body == "" {
		return fmt.Sprintf("unexpected status %d", e.code)
	}
	return fmt.Sprintf("unexpected status %d: %s", e.code, e.body)
}

var errNoURL = errors.New("channel has no url")

// notifyCommon is the key-value pairs every alert shares (Alertmanager's commonLabels).
func notifyCommon(alerts []Alert, f func(Alert) map[string]string) map[string]string {
	out := map[string]string{}
	if len(alerts) == 0 {
		return out
	}
	for k, v := range f(alerts[0]) {
		out[k] = v
	}
	for _, a := range alerts[1:] {
		m := f(a)
		for k, v := range out {
			if w, ok := m[k]; !ok || w != v {
				delete(out, k)
			}
		}
	}
	return out
}

// notifyStatus is "firing" when any alert fires, else "resolved" (as Alertmanager's).
func notifyStatus(alerts []Alert) string {
	for _, a := range alerts {
		if a.Status != "resolved" {
			return "firing"
		}
	}
	return "resolved"
}

// notifyLabels is the alert's labels with alertname and severity filled in when missing.
func notifyLabels(a Alert, rule string) map[string]string {
	out := make(map[string]string, len(a.Labels)+2)
	for k, v := range a.Labels {
		out[k] = v
	}
	if out["alertname"] == "" {
		name := a.Rule
		if name == "" {
			name = rule
		}
		out["alertname"] = name
	}
	if out["severity"] == "" && a.Severity != "" {
		out["severity"] = a.Severity
	}
	return out
}

// notifyGeneratorURL links an alert to its rule in this sensor's API.
func notifyGeneratorURL(externalURL string, a Alert) string {
	if externalURL == "" || a.RuleID == "" {
		return ""
	}
	return strings.TrimRight(externalURL, "/") + "/api/v1/alerts/" + a.RuleID
}
