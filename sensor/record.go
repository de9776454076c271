package sensor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/netsentry/netsentry/store"
)

// metricsContentType is what /metrics says it serves; the parser is picked
// by it, as a Prometheus scrape picks it.
const metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// ParseSamples parses text, a Prometheus text exposition (what /metrics
// serves), the way a Prometheus scrape does (the same parser,
// model/textparse), and appends one store.Sample per sample to dst: the
// metric name, the other labels sorted by name (an empty value is no
// label, as in Prometheus), the value. Samples with a
// timestamp of their own are refused: /metrics writes none, and a store
// tick has one timestamp for all.
func ParseSamples(text []byte, dst []store.Sample) ([]store.Sample, error) {
	p, err := textparse.New(text, metricsContentType, labels.NewSymbolTable(), textparse.ParserOptions{})
	if err != nil {
		return dst, fmt.Errorf("parse metrics: %w", err)
	}
	var ls labels.Labels
	for {
		et, err := p.Next()
		if errors.Is(err, io.EOF) {
			return dst, nil
		}
		if err != nil {
			return dst, fmt.Errorf("parse metrics: %w", err)
		}
		if et != textparse.EntrySeries {
			continue // HELP, TYPE, comments; /metrics has no histograms
		}
		_, ts, v := p.Series()
		if ts != nil {
			return dst, fmt.Errorf("parse metrics: a sample with its own timestamp")
		}
		p.Labels(&ls)
		s := store.Sample{Value: v}
		ls.Range(func(l labels.Label) { // sorted by name
			if l.Name == model.MetricNameLabel {
				s.Name = strings.Clone(l.Value)
				return
			}
			if l.Value == "" {
				return // Prometheus stores no empty label: it is the same series without it
			}
			s.Labels = append(s.Labels, store.Label{Name: strings.Clone(l.Name), Value: strings.Clone(l.Value)})
		})
		dst = append(dst, s)
	}
}

// MetricsWriter writes the /metrics text (httpd.Server.WriteMetrics: every
// family but the API's request counters, whose label set grows with the
// routes asked for).
type MetricsWriter interface {
	WriteMetrics(w io.Writer)
}

// Appender stores one tick of samples (store.Store).
type Appender interface {
	Append(ts time.Time, samples []store.Sample) error
}

// RecorderOptions configure a Recorder.
type RecorderOptions struct {
	Metrics MetricsWriter
	// Store is the local store; Remote the queue of a remote backend
	// (remote.Writer). Either may be nil, not both.
	Store  Appender
	Remote Appender
	// Interval is the sampling interval (storage.interval); ticks are
	// aligned to it.
	Interval time.Duration
	// Enforce is called about once a minute (retention and the disk cap of
	// the flow history); nil: never.
	Enforce func(now time.Time) error
	Log     *slog.Logger
}

// Recorder stores what /metrics serves every interval: one tick of
// samples, every series sharing the tick's aligned timestamp. Run is its
// only goroutine.
type Recorder struct {
	opt     RecorderOptions
	log     *slog.Logger
	buf     bytes.Buffer
	samples []store.Sample
	lastEnf time.Time
}

// NewRecorder returns a recorder; Run starts it.
func NewRecorder(opt RecorderOptions) (*Recorder, error) {
	if opt.Metrics == nil || (opt.Store == nil && opt.Remote == nil) || opt.Interval <= 0 {
		return nil, errors.New("new recorder: Metrics, Store or Remote, and a positive Interval are required")
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Recorder{opt: opt, log: log}, nil
}

// Tick renders the metrics, parses them and appends them at now aligned
// down to the interval.
func (r *Recorder) Tick(now time.Time) error {
	r.buf.Reset()
	r.opt.Metrics.WriteMetrics(&r.buf)
	var err error
	r.samples, err = ParseSamples(r.buf.Bytes(), r.samples[:0])
	if err != nil {
		return err
	}
	// Prometheus keeps the first of two samples of one series in a scrape
	// and refuses the others; /metrics writes none twice, but a store tick
	// must not hold duplicates whatever the text.
	r.samples = dedupe(r.samples)
	ts := now.Truncate(r.opt.Interval)
	var err1, err2 error
	if r.opt.Store != nil {
		if err := r.opt.Store.Append(ts, r.samples); err != nil {
			err1 = fmt.Errorf("append tick: %w", err)
		}
	}
	// The remote queue takes the tick whatever the local store said: it
	// only writes to disk, never waits for the backend.
	if r.opt.Remote != nil {
		if err := r.opt.Remote.Append(ts, r.samples); err != nil {
			err2 = fmt.Errorf("queue tick for the remote backend: %w", err)
		}
	}
	return errors.Join(err1, err2)
}

// dedupe drops every sample whose series came earlier in s.
func dedupe(s []store.Sample) []store.Sample {
	seen := make(map[string]bool, len(s))
	var b strings.Builder
	out := s[:0]
	for _, x := range s {
		b.Reset()
		b.WriteString(x.Name)
		for _, l := range x.Labels {
			b.WriteByte(0)
			b.WriteString(l.Name)
			b.WriteByte(0)
			b.WriteString(l.Value)
		}
		if k := b.String(); !seen[k] {
			seen[k] = true
			out = append(out, x)
		}
	}
	return out
}

// Run records a tick at every interval boundary until ctx ends. A tick
// that fails is logged (once per kind of failure in a row) and the next
// one is tried.
func (r *Recorder) Run(ctx context.Context) {
	var lastErr string
	for {
		now := time.Now()
		next := now.Truncate(r.opt.Interval).Add(r.opt.Interval)
		t := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := r.Tick(next); err != nil {
			if msg := err.Error(); msg != lastErr {
				r.log.Error("store: tick not stored", "err", err)
				lastErr = msg
			}
		} else if lastErr != "" {
			r.log.Info("store: ticks stored again")
			lastErr = ""
		}
		if r.opt.Enforce != nil && next.Sub(r.lastEnf) >= time.Minute {
			r.lastEnf = next
			if err := r.opt.Enforce(next); err != nil {
				r.log.Error("store: retention", "err", err)
			}
		}
	}
}
