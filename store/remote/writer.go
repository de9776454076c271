package remote

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/netsentry/netsentry/store"
)

// Backends, as storage.type names them.
const (
	Prometheus      = "prometheus"
	VictoriaMetrics = "victoriametrics"
	InfluxDB        = "influxdb"
)

// Defaults of Options.
const (
	DefaultQueueBytes        = 256 << 20
	DefaultMaxSamplesPerSend = 10000
	DefaultMinBackoff        = 250 * time.Millisecond
	DefaultMaxBackoff        = 5 * time.Second
	DefaultRequestTimeout    = 10 * time.Second
	DefaultFlushTimeout      = time.Second
)

// Options configure a Writer.
type Options struct {
	// Backend is Prometheus, VictoriaMetrics or InfluxDB.
	Backend string
	// URL is storage.remote_url: prometheus and victoriametrics: the
	// remote-write endpoint (no path: /api/v1/write); influxdb: the server
	// (/write or /api/v2/write is appended to its path).
	URL string
	// Token is a bearer token (InfluxDB: "Authorization: Token");
	// Username and Password HTTP basic auth.
	Token, Username, Password string
	// InfluxDatabase selects InfluxDB 1.x (/write?db=); InfluxOrg and
	// InfluxBucket 2.x (/api/v2/write).
	InfluxDatabase, InfluxOrg, InfluxBucket string
	// Sensor is the value of the sensor label; required.
	Sensor string
	// QueueBytes bounds the queue (record bytes); 0: DefaultQueueBytes.
	QueueBytes int64
	// MaxSamplesPerSend bounds a request (whole ticks; one tick at least);
	// 0: DefaultMaxSamplesPerSend.
	MaxSamplesPerSend int
	// MinBackoff and MaxBackoff bound the wait between two attempts,
	// doubled after each failure; 0: the defaults.
	MinBackoff, MaxBackoff time.Duration
	// RequestTimeout bounds one request; 0: DefaultRequestTimeout.
	RequestTimeout time.Duration
	// FlushTimeout bounds what Close spends sending; 0: DefaultFlushTimeout.
	FlushTimeout time.Duration
	// Client sends the requests; nil: a client of its own.
	Client *http.Client
	Logger *slog.Logger
}

// Stats are the writer's counters, in samples unless named otherwise.
type Stats struct {
	Backend string
	// Sent: taken by the backend. Failed: refused for good by the backend,
	// unreadable in the queue, or not representable there (InfluxDB: NaN,
	// ±Inf). Retried: in attempts that failed and were (or will be) sent
	// again. Dropped: deleted unsent, the queue past its bound.
	Sent, Failed, Retried, Dropped uint64
	// Queued: waiting in the queue (the request in flight included).
	Queued        uint64
	QueuedBytes   int64
	CapacityBytes int64
	Requests      uint64 // requests made, every attempt counted
	LastSent      time.Time
}

// Queue keys.
const (
	keyQueue = 0x30
	subRec   = 'q'
	subVer   = 'v'
	queueVer = 1
)

func recKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{keyQueue, subRec}, seq)
}

// meta is what the writer keeps in memory of a queued record.
type meta struct {
	seq     uint64
	bytes   int64
	samples uint64
}

// Writer queues ticks on disk and sends them to one backend. See the
// package documentation.
type Writer struct {
	db       *pebble.DB
	opt      Options
	log      *slog.Logger
	endpoint string
	enc      encoder

	mu       sync.Mutex
	metas    []meta // queued records, oldest first
	inflight int    // metas[:inflight] are being sent
	bytes    int64
	queued   uint64
	next     uint64 // sequence number of the next record
	rec      []byte // Append's scratch
	body     []byte

	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	closing sync.Once

	sent, failed, retried, dropped, requests atomic.Uint64
	lastSent                                 atomic.Int64 // Unix ns; 0: never
}

// Open opens the queue in db (creating it when missing) and starts the
// sender. Options are checked: an unknown backend, a URL that is not
// http(s), a missing sensor name or InfluxDB target are errors.
func Open(db *pebble.DB, opt Options) (*Writer, error) {
	if opt.QueueBytes <= 0 {
		opt.QueueBytes = DefaultQueueBytes
	}
	if opt.MaxSamplesPerSend <= 0 {
		opt.MaxSamplesPerSend = DefaultMaxSamplesPerSend
	}
	if opt.MinBackoff <= 0 {
		opt.MinBackoff = DefaultMinBackoff
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = DefaultMaxBackoff
	}
	opt.MaxBackoff = max(opt.MaxBackoff, opt.MinBackoff)
	if opt.RequestTimeout <= 0 {
		opt.RequestTimeout = DefaultRequestTimeout
	}
	if opt.FlushTimeout <= 0 {
		opt.FlushTimeout = DefaultFlushTimeout
	}
	if opt.Client == nil {
		opt.Client = &http.Client{}
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Sensor == "" {
		return nil, errors.New("open remote writer: no sensor name")
	}
	w := &Writer{db: db, opt: opt, log: opt.Logger.With("backend", opt.Backend),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	var err error
	if w.endpoint, err = endpoint(opt); err != nil {
		return nil, fmt.Errorf("open remote writer: %w", err)
	}
	switch opt.Backend {
	case Prometheus, VictoriaMetrics:
		w.enc = newPromEncoder(opt.Sensor)
	case InfluxDB:
		w.enc = &influxEncoder{sensor: opt.Sensor}
	}
	if err := w.load(); err != nil {
		return nil, fmt.Errorf("open remote queue: %w", err)
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	go w.run()
	return w, nil
}

// endpoint is the URL requests go to.
func endpoint(opt Options) (string, error) {
	u, err := url.Parse(opt.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("url %q is not an http(s) URL", opt.URL)
	}
	switch opt.Backend {
	case Prometheus, VictoriaMetrics:
		if u.Path == "" || u.Path == "/" {
			u.Path = "/api/v1/write"
		}
	case InfluxDB:
		q := u.Query()
		base := strings.TrimSuffix(u.Path, "/")
		switch {
		case opt.InfluxDatabase != "" && opt.InfluxBucket == "":
			u.Path = base + "/write"
			q.Set("db", opt.InfluxDatabase)
		case opt.InfluxBucket != "" && opt.InfluxOrg != "" && opt.InfluxDatabase == "":
			u.Path = base + "/api/v2/write"
			q.Set("org", opt.InfluxOrg)
			q.Set("bucket", opt.InfluxBucket)
		default:
			return "", errors.New("influxdb needs a database (1.x) or an organization and a bucket (2.x)")
		}
		q.Set("precision", "ms")
		u.RawQuery = q.Encode()
	default:
		return "", fmt.Errorf("backend %q is not one of %s, %s, %s", opt.Backend, Prometheus, VictoriaMetrics, InfluxDB)
	}
	return u.String(), nil
}

// load checks the queue's format and reads what it holds.
func (w *Writer) load() error {
	verKey := []byte{keyQueue, subVer}
	v, c, err := w.db.Get(verKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		if err := w.db.Set(verKey, []byte{queueVer}, pebble.Sync); err != nil {
			return fmt.Errorf("write format: %w", err)
		}
	case err != nil:
		return fmt.Errorf("read format: %w", err)
	default:
		ok := len(v) == 1 && v[0] == queueVer
		c.Close()
		if !ok {
			return errors.New("the queue's format is not one this build reads")
		}
	}
	it, err := w.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keyQueue, subRec}, UpperBound: []byte{keyQueue, subRec + 1}})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != 10 {
			continue // not ours to read; removed with its neighbours
		}
		val, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return err
		}
		n, _, _, herr := recordHeader(val)
		if herr != nil {
			n = 0 // the sender counts it failed when it cannot decode it
		}
		m := meta{seq: binary.BigEndian.Uint64(k[2:]), bytes: int64(len(val)), samples: n}
		w.metas = append(w.metas, m)
		w.bytes += m.bytes
		w.queued += m.samples
		w.next = m.seq + 1
	}
	if err := it.Close(); err != nil {
		return err
	}
	w.mu.Lock()
	err = w.trimLocked()
	w.mu.Unlock()
	return err
}

// Append queues one tick: samples at ts. It returns once the record is
// durable; it never waits for the backend. Past the queue's bound the
// oldest records not in flight are deleted and counted as dropped.
func (w *Writer) Append(ts time.Time, samples []store.Sample) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rec, w.body = appendRecord(w.rec[:0], w.body, ts.UnixMilli(), samples)
	seq := w.next
	if err := w.db.Set(recKey(seq), w.rec, pebble.Sync); err != nil {
		return fmt.Errorf("queue tick: %w", err)
	}
	w.next++
	w.metas = append(w.metas, meta{seq: seq, bytes: int64(len(w.rec)), samples: uint64(len(samples))})
	w.bytes += int64(len(w.rec))
	w.queued += uint64(len(samples))
	err := w.trimLocked()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return err
}

// trimLocked deletes the oldest records while the queue is past its
// bound (the newest record always stays). While a request is in flight
// it does nothing: the sender trims when the request has ended, so the
// queue may pass its bound by the ticks of one request's time.
func (w *Writer) trimLocked() error {
	if w.inflight > 0 {
		return nil
	}
	end := 0
	var bytes int64
	var samples uint64
	for end < len(w.metas)-1 && w.bytes-bytes > w.opt.QueueBytes {
		bytes += w.metas[end].bytes
		samples += w.metas[end].samples
		end++
	}
	if end == 0 {
		return nil
	}
	if err := w.db.DeleteRange(recKey(w.metas[0].seq), recKey(w.metas[end-1].seq+1), pebble.NoSync); err != nil {
		return fmt.Errorf("drop from the queue: %w", err)
	}
	w.metas = w.metas[end:]
	w.bytes -= bytes
	w.queued -= samples
	w.dropped.Add(samples)
	return nil
}

// Stats returns the current counters; safe from any goroutine.
func (w *Writer) Stats() Stats {
	w.mu.Lock()
	st := Stats{Backend: w.opt.Backend, Queued: w.queued, QueuedBytes: w.bytes, CapacityBytes: w.opt.QueueBytes}
	w.mu.Unlock()
	st.Sent, st.Failed, st.Retried, st.Dropped = w.sent.Load(), w.failed.Load(), w.retried.Load(), w.dropped.Load()
	st.Requests = w.requests.Load()
	if ns := w.lastSent.Load(); ns != 0 {
		st.LastSent = time.Unix(0, ns)
	}
	return st
}

// Close stops the sender: it goes on sending what is queued for at most
// Options.FlushTimeout and stops at the first failure; what is not sent
// stays queued for the next Open. Close the writer before the database.
func (w *Writer) Close() error {
	w.closing.Do(func() {
		close(w.stop)
		t := time.AfterFunc(w.opt.FlushTimeout, w.cancel)
		<-w.done
		t.Stop()
		w.cancel()
	})
	return nil
}

func (w *Writer) stopping() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// run is the sender.
func (w *Writer) run() {
	defer close(w.done)
	var (
		ticks   []tick
		samples []store.Sample
		body    []byte
		out     []byte
		backoff = w.opt.MinBackoff
		lastErr string
	)
	for {
		w.mu.Lock()
		k, n := 0, uint64(0)
		for k < len(w.metas) && (k == 0 || n+w.metas[k].samples <= uint64(w.opt.MaxSamplesPerSend)) {
			n += w.metas[k].samples
			k++
		}
		w.inflight = k
		var first, last uint64
		if k > 0 {
			first, last = w.metas[0].seq, w.metas[k-1].seq
		}
		w.mu.Unlock()
		if k == 0 {
			if w.stopping() {
				return
			}
			select {
			case <-w.wake:
			case <-w.stop:
			}
			continue
		}
		if w.ctx.Err() != nil {
			return
		}

		// Read and decode the batch; a record that does not decode is
		// counted failed and deleted with the rest.
		ticks, samples = ticks[:0], samples[:0]
		var bad uint64
		it, err := w.db.NewIter(&pebble.IterOptions{LowerBound: recKey(first), UpperBound: recKey(last + 1)})
		if err != nil {
			w.log.Error("remote: read the queue", "err", err)
			if !w.sleep(&backoff) {
				return
			}
			continue
		}
		var spans [][2]int
		for it.First(); it.Valid(); it.Next() {
			val, err := it.ValueAndErr()
			var ts int64
			start := len(samples)
			if err == nil {
				ts, samples, body, err = decodeRecord(val, body, samples)
			}
			if err != nil {
				if hn, _, _, herr := recordHeader(val); herr == nil {
					bad += hn
				}
				w.log.Error("remote: queue record unreadable; skipped", "err", err)
				continue
			}
			ticks = append(ticks, tick{ts: ts})
			spans = append(spans, [2]int{start, len(samples)})
		}
		err = it.Close()
		if err != nil {
			w.log.Error("remote: read the queue", "err", err)
			if !w.sleep(&backoff) {
				return
			}
			continue
		}
		for i := range ticks {
			ticks[i].samples = samples[spans[i][0]:spans[i][1]]
		}
		var skipped int
		out, skipped = w.enc.encode(out, ticks)
		good := uint64(len(samples) - skipped)

		if len(ticks) > 0 {
			err := w.post(out)
			var perm *permanentError
			switch {
			case err == nil:
				w.sent.Add(good)
				w.lastSent.Store(time.Now().UnixNano())
				if lastErr != "" {
					w.log.Info("remote: sending again")
					lastErr = ""
				}
			case errors.As(err, &perm):
				bad += good
				w.log.Error("remote: samples refused by the backend; not sent again", "samples", good, "err", err)
			default:
				// Sent again from the queue after the backoff; meanwhile
				// the queue may drop its oldest, this batch included.
				w.retried.Add(good)
				if msg := err.Error(); msg != lastErr {
					w.log.Warn("remote: send failed; retrying with backoff", "err", err)
					lastErr = msg
				}
				w.mu.Lock()
				w.inflight = 0
				if err := w.trimLocked(); err != nil {
					w.log.Error("remote: trim the queue", "err", err)
				}
				w.mu.Unlock()
				if w.stopping() || !w.sleep(&backoff) {
					return
				}
				continue
			}
		}
		backoff = w.opt.MinBackoff
		w.failed.Add(bad + uint64(skipped))
		w.mu.Lock()
		if err := w.db.DeleteRange(recKey(first), recKey(last+1), pebble.NoSync); err != nil {
			w.log.Error("remote: delete sent records", "err", err) // sent again after a restart
		}
		for _, m := range w.metas[:k] {
			w.bytes -= m.bytes
			w.queued -= m.samples
		}
		w.metas = w.metas[k:]
		if len(w.metas) == 0 {
			w.metas = nil // let the backing array go
		}
		w.inflight = 0
		if err := w.trimLocked(); err != nil {
			w.log.Error("remote: trim the queue", "err", err)
		}
		w.mu.Unlock()
		clear(samples) // no strings kept alive
	}
}

// sleep waits the backoff (with up to a quarter more, so that sensors
// that lost one backend do not come back in step) and doubles it; false
// when the writer is stopping.
func (w *Writer) sleep(backoff *time.Duration) bool {
	d := *backoff + rand.N(*backoff/4+1)
	*backoff = min(2**backoff, w.opt.MaxBackoff)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.stop:
		return false
	case <-w.ctx.Done():
		return false
	}
}

// permanentError is an answer that sending again cannot change.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// post sends one request body.
func (w *Writer) post(body []byte) error {
	w.requests.Add(1)
	ctx, cancel := context.WithTimeout(w.ctx, w.opt.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.endpoint, bytes.NewReader(body))
	if err != nil {
		return &permanentError{fmt.Errorf("new request: %w", err)}
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("User-Agent", "netsentry")
	switch w.opt.Backend {
	case InfluxDB:
		req.Header.Set("Content-Type", "text/plain; charset=utf-8")
		if w.opt.Token != "" {
			req.Header.Set("Authorization", "Token "+w.opt.Token)
		}
	default:
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "snappy")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
		if w.opt.Token != "" {
			req.Header.Set("Authorization", "Bearer "+w.opt.Token)
		}
	}
	if w.opt.Username != "" {
		req.SetBasicAuth(w.opt.Username, w.opt.Password)
	}
	resp, err := w.opt.Client.Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w", redact(w.endpoint), err)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("post %s: %s: %s", redact(w.endpoint), resp.Status, strings.TrimSpace(string(msg)))
	if retryable(resp.StatusCode) {
		return err
	}
	return &permanentError{err}
}

// retryable says whether an HTTP status may change by sending the same
// body again: server errors, and client errors that are about the server
// or its configuration (authentication, a missing database or path, rate
// limits), not about the data.
func retryable(code int) bool {
	switch code {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusRequestTimeout, http.StatusTooManyRequests:
		return true
	}
	return code >= 500 || code < 400
}

// redact drops the query (InfluxDB's may name users) from a URL for
// messages.
func redact(s string) string {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		return s[:i]
	}
	return s
}

// Sensor is the value of the sensor label the writer sends.
func (w *Writer) Sensor() string { return w.opt.Sensor }
