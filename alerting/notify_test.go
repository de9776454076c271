package alerting

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func ntAlert(rule, group string, status string) Alert {
	a := Alert{
		Rule: rule, RuleID: "r1", Severity: "critical", GroupKey: group,
		Labels:      map[string]string{"alertname": rule, "severity": "critical"},
		Annotations: map[string]string{"summary": rule + " on " + group},
		Values:      map[string]float64{"network.connection_count": 120},
		StartsAt:    time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC),
		Status:      status,
		Fingerprint: "0123456789abcdef",
	}
	if group != "" {
		k, v, _ := strings.Cut(group, "=")
		a.Labels[k] = v
	}
	if status == "resolved" {
		a.EndsAt = a.StartsAt.Add(time.Minute)
	}
	return a
}

// ntReceiver is an HTTP server on loopback that records what it got and when.
type ntReceiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  []time.Time
	body [][]byte
	hits atomic.Int64
	// handle decides the answer of the nth request (from 1); nil: 200.
	handle func(n int64, w http.ResponseWriter) bool
}

func ntNewReceiver(t testing.TB, handle func(n int64, w http.ResponseWriter) bool) *ntReceiver {
	r := &ntReceiver{handle: handle}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		n := r.hits.Add(1)
		if r.handle != nil && !r.handle(n, w) {
			return
		}
		r.mu.Lock()
		r.got = append(r.got, time.Now())
		r.body = append(r.body, b)
		r.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *ntReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func (r *ntReceiver) first() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) == 0 {
		return time.Time{}
	}
	return r.got[0]
}

func ntWait(t testing.TB, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ntStats(t testing.TB, d *Dispatcher, url string) ChannelStats {
	t.Helper()
	for _, s := range d.Stats() {
		if s.Target == url {
			return s
		}
	}
	t.Fatalf("no stats for %s in %+v", url, d.Stats())
	return ChannelStats{}
}

func ntWebhookNote(url string) Notification {
	return Notification{Channel: Channel{Type: "webhook", URL: url}, Rule: "Potential Port Scan",
		Alerts: []Alert{ntAlert("Potential Port Scan", "src_ip=10.0.0.5", "firing")}}
}

func ntClose(t testing.TB, d *Dispatcher) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = d.Close(ctx)
	})
}

// freeAddr returns a loopback address nothing listens on (yet).
func ntFreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestDownReceiverComesBack: a receiver refusing connections gets the alert once it listens,
// through retries, while another channel's notification arrives at once.
func TestDownReceiverComesBack(t *testing.T) {
	d := NewDispatcher(NotifyOptions{Timeout: time.Second, Retries: 20,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	ntClose(t, d)

	downAddr := ntFreeAddr(t)
	downURL := "http://" + downAddr + "/hook"
	up := ntNewReceiver(t, nil)

	d.Send(ntWebhookNote(downURL))
	time.Sleep(30 * time.Millisecond) // the down channel is failing and backing off now
	sent := time.Now()
	d.Send(ntWebhookNote(up.srv.URL))
	ntWait(t, 2*time.Second, "the up receiver", func() bool { return up.count() == 1 })
	lat := up.first().Sub(sent)
	t.Logf("up receiver got it %v after Send while the other channel was refused", lat)
	if lat > 100*time.Millisecond {
		t.Errorf("up receiver delayed %v by the down one; want < 100ms", lat)
	}

	ntWait(t, 2*time.Second, "a retry of the down channel", func() bool { return ntStats(t, d, downURL).Retried >= 2 })
	l, err := net.Listen("tcp", downAddr)
	if err != nil {
		t.Fatalf("listen on %s again: %v", downAddr, err)
	}
	back := &ntReceiver{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		back.mu.Lock()
		back.got = append(back.got, time.Now())
		back.body = append(back.body, b)
		back.mu.Unlock()
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	ntWait(t, 3*time.Second, "the receiver that came back", func() bool { return back.count() == 1 })
	var m WebhookMessage
	if err := json.Unmarshal(back.body[0], &m); err != nil || len(m.Alerts) != 1 || m.Alerts[0].Labels["src_ip"] != "10.0.0.5" {
		t.Errorf("came-back receiver got %s (%v)", back.body[0], err)
	}
	// The receiver holds the body before its answer reaches the dispatcher, which counts
	// the send only then: wait for the count rather than read it at once.
	ntWait(t, 2*time.Second, "the down channel's send counted", func() bool { return ntStats(t, d, downURL).Sent >= 1 })
	s := ntStats(t, d, downURL)
	t.Logf("down channel: %+v", s)
	if s.Sent != 1 || s.Failed != 0 || s.Retried < 2 || s.Dropped != 0 {
		t.Errorf("down channel stats %+v: want sent 1, failed 0, retried >= 2", s)
	}
	ntWait(t, 2*time.Second, "the up channel's send counted", func() bool { return ntStats(t, d, up.srv.URL).Sent >= 1 })
	if s := ntStats(t, d, up.srv.URL); s.Sent != 1 || s.Retried != 0 {
		t.Errorf("up channel stats %+v", s)
	}
}

// TestSlowReceiverRetried: a receiver that sleeps past the attempt timeout is retried, and
// answers on the next attempt; other channels are not delayed meanwhile.
func TestSlowReceiverRetried(t *testing.T) {
	const timeout = 150 * time.Millisecond
	release := make(chan struct{})
	slow := ntNewReceiver(t, func(n int64, w http.ResponseWriter) bool {
		if n == 1 {
			select { // past the timeout; the client gives up first
			case <-time.After(3 * timeout):
			case <-release:
			}
			return false
		}
		return true
	})
	t.Cleanup(func() { close(release) })
	fast := ntNewReceiver(t, nil)
	d := NewDispatcher(NotifyOptions{Timeout: timeout, Retries: 3,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	ntClose(t, d)

	start := time.Now()
	d.Send(ntWebhookNote(slow.srv.URL))
	ntWait(t, time.Second, "the slow receiver's first request", func() bool { return slow.hits.Load() >= 1 })
	sent := time.Now()
	d.Send(ntWebhookNote(fast.srv.URL))
	ntWait(t, time.Second, "the fast receiver", func() bool { return fast.count() == 1 })
	if lat := fast.first().Sub(sent); lat > 100*time.Millisecond {
		t.Errorf("fast receiver delayed %v by the slow one; want < 100ms", lat)
	} else {
		t.Logf("fast receiver got it %v after Send while the slow one hung", lat)
	}
	ntWait(t, 2*time.Second, "the slow receiver's retry", func() bool { return slow.count() == 1 })
	took := slow.first().Sub(start)
	if took < timeout {
		t.Errorf("slow receiver answered after %v, before the %v timeout: no retry happened", took, timeout)
	}
	// The receiver has the body before the sender has read the answer and
	// counted it: wait for the count.
	ntWait(t, 2*time.Second, "the slow channel's sent count", func() bool { return ntStats(t, d, slow.srv.URL).Sent == 1 })
	s := ntStats(t, d, slow.srv.URL)
	t.Logf("slow channel delivered after %v: %+v", took, s)
	// At least one retry (the first attempt timed out); on a loaded box a
	// later attempt may miss its 150 ms too.
	if s.Sent != 1 || s.Retried < 1 || s.Failed != 0 {
		t.Errorf("slow channel stats %+v: want sent 1, retried >= 1", s)
	}
}

// TestFullQueueDrops: with the channel's goroutine stuck on a hung receiver, Sends past the
// queue's size are dropped, counted, and Send does not block.
func TestFullQueueDrops(t *testing.T) {
	release := make(chan struct{})
	hung := ntNewReceiver(t, func(n int64, w http.ResponseWriter) bool {
		if n == 1 {
			<-release
		}
		return true
	})
	d := NewDispatcher(NotifyOptions{Timeout: 5 * time.Second, Retries: -1, QueueSize: 4})
	ntClose(t, d)
	d.Send(ntWebhookNote(hung.srv.URL))
	ntWait(t, time.Second, "the first request", func() bool { return hung.hits.Load() == 1 })
	start := time.Now()
	for range 10 {
		d.Send(ntWebhookNote(hung.srv.URL))
	}
	if el := time.Since(start); el > 50*time.Millisecond {
		t.Errorf("10 Sends to a full queue took %v", el)
	}
	s := ntStats(t, d, hung.srv.URL)
	if s.Queued != 4 || s.Dropped != 6 {
		t.Errorf("stats %+v: want queued 4, dropped 6", s)
	}
	close(release)
	ntWait(t, 2*time.Second, "the queue to drain", func() bool { return hung.count() == 5 })
	ntWait(t, time.Second, "sent to count", func() bool { return ntStats(t, d, hung.srv.URL).Sent == 5 })
	if s := ntStats(t, d, hung.srv.URL); s.Queued != 0 || s.Dropped != 6 || s.Failed != 0 {
		t.Errorf("after drain: %+v", s)
	}
}

// TestRetryByStatus: 5xx and 429 are retried, other 4xx are not (Alertmanager's Retrier does
// the same for 5xx; 429 is RFC 6585's "retry later").
func TestRetryByStatus(t *testing.T) {
	for _, tc := range []struct {
		code        int
		wantRetried uint64
		wantSent    uint64
	}{
		{http.StatusInternalServerError, 1, 1},
		{http.StatusServiceUnavailable, 1, 1},
		{http.StatusTooManyRequests, 1, 1},
		{http.StatusBadRequest, 0, 0},
		{http.StatusNotFound, 0, 0},
		{http.StatusUnauthorized, 0, 0},
	} {
		r := ntNewReceiver(t, func(n int64, w http.ResponseWriter) bool {
			if n == 1 {
				w.WriteHeader(tc.code)
				return false
			}
			return true
		})
		d := NewDispatcher(NotifyOptions{Timeout: time.Second, Retries: 3, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
		d.Send(ntWebhookNote(r.srv.URL))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := d.Close(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		s := ntStats(t, d, r.srv.URL)
		wantFailed := 1 - tc.wantSent
		if s.Retried != tc.wantRetried || s.Sent != tc.wantSent || s.Failed != wantFailed {
			t.Errorf("status %d: stats %+v, want retried %d sent %d failed %d", tc.code, s, tc.wantRetried, tc.wantSent, wantFailed)
		}
	}
}

// TestRetriesExhausted: a channel that always fails makes 1+Retries attempts, then counts a failure.
func TestRetriesExhausted(t *testing.T) {
	r := ntNewReceiver(t, func(n int64, w http.ResponseWriter) bool { w.WriteHeader(502); return false })
	d := NewDispatcher(NotifyOptions{Timeout: time.Second, Retries: 4, MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond})
	d.Send(ntWebhookNote(r.srv.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.hits.Load(); got != 5 {
		t.Errorf("receiver saw %d attempts, want 5", got)
	}
	if s := ntStats(t, d, r.srv.URL); s.Failed != 1 || s.Retried != 4 || s.Sent != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestBackoffBounds: each wait is in [d/2, d) with d doubling from MinBackoff, capped at MaxBackoff.
func TestBackoffBounds(t *testing.T) {
	d := NewDispatcher(NotifyOptions{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	want := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	for i, w := range want {
		w *= time.Millisecond
		for range 200 {
			b := d.backoff(i)
			if b < w/2 || b >= w {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v)", i, b, w/2, w)
			}
		}
	}
}

// TestCloseAbortsBackoff: Close with a deadline ends a channel stuck in retries and returns
// the context's error; Sends after Close are dropped.
func TestCloseAbortsBackoff(t *testing.T) {
	url := "http://" + ntFreeAddr(t) + "/"
	d := NewDispatcher(NotifyOptions{Timeout: time.Second, Retries: 100, MinBackoff: time.Second, MaxBackoff: time.Second})
	d.Send(ntWebhookNote(url))
	ntWait(t, time.Second, "a retry", func() bool { return ntStats(t, d, url).Retried >= 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := d.Close(ctx); err == nil {
		t.Error("Close returned nil with a channel still retrying")
	}
	if el := time.Since(start); el > 500*time.Millisecond {
		t.Errorf("Close took %v", el)
	}
	d.Send(ntWebhookNote(url))
	if s := ntStats(t, d, url); s.Failed != 1 || s.Dropped != 1 {
		t.Errorf("stats %+v: want failed 1 (aborted), dropped 1 (after close)", s)
	}
}

// TestChannelKeys: one queue per type + URL (or sorted recipients).
func TestChannelKeys(t *testing.T) {
	d := NewDispatcher(NotifyOptions{Retries: -1, Timeout: 100 * time.Millisecond})
	ntClose(t, d)
	d.Send(Notification{Channel: Channel{Type: "email", Recipients: []string{"b@x", "a@x"}}})
	d.Send(Notification{Channel: Channel{Type: "email", Recipients: []string{"a@x", "b@x"}}})
	d.Send(Notification{Channel: Channel{Type: "bogus", URL: "http://127.0.0.1:1/"}})
	st := d.Stats()
	if len(st) != 2 || st[0].Target != "a@x,b@x" || st[0].Type != "email" || st[1].Type != "bogus" || st[1].Failed != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"http://user:pw@host:9093/api/v2/alerts?token=x": "http://host:9093/api/v2/alerts",
		"https://host/a@b": "https://host/a@b",
		"a@x,b@x":          "a@x,b@x",
	} {
		if got := redactTarget(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}
