package store

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// NewQueryable returns the Prometheus storage interface over src, for the
// PromQL engine (promql.Engine) and the Prometheus HTTP API.
//
// Matchers: only the matchers that need their label present with a
// matching value (those that do not match the empty string) are passed to
// src; every matcher, those included, is then checked again on each series
// with Prometheus's own labels.Matcher, so src may return more series than
// asked (an unanchored regexp, say) but not fewer, and a matcher like
// {job=""} or {job!~"a.*"} means what it means in Prometheus (a missing
// label is the empty value).
//
// Threading: the Queryable and its Queriers hold no state but the range;
// any number may be used at once if src may. A series' points are read
// from src when the series set reaches it, and belong to that series
// alone, so a series stays iterable after Next.
func NewQueryable(src SampleSource) storage.Queryable {
	return queryable{src: src}
}

type queryable struct{ src SampleSource }

func (q queryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return &querier{src: q.src, mint: mint, maxt: maxt}, nil
}

type querier struct {
	src        SampleSource
	mint, maxt int64
}

// toSource returns the matchers to pass to the source: those that do not
// match the empty string.
func toSource(ms []*labels.Matcher) ([]Matcher, error) {
	var out []Matcher
	for _, m := range ms {
		if m == nil || m.Matches("") {
			continue
		}
		var t MatchType
		switch m.Type {
		case labels.MatchEqual:
			t = MatchEqual
		case labels.MatchNotEqual:
			t = MatchNotEqual
		case labels.MatchRegexp:
			t = MatchRegexp
		case labels.MatchNotRegexp:
			t = MatchNotRegexp
		default:
			return nil, fmt.Errorf("convert matcher %s: unknown match type", m)
		}
		out = append(out, Matcher{Type: t, Name: m.Name, Value: m.Value})
	}
	return out, nil
}

// seriesLabels returns the label set of si, the name as __name__.
func seriesLabels(si *SeriesInfo) labels.Labels {
	b := labels.NewScratchBuilder(len(si.Labels) + 1)
	b.Add(model.MetricNameLabel, si.Name)
	for _, l := range si.Labels {
		if l.Value != "" && l.Name != model.MetricNameLabel {
			b.Add(l.Name, l.Value)
		}
	}
	b.Sort()
	return b.Labels()
}

func matchesAll(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if m != nil && !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

type selected struct {
	si   SeriesInfo
	lset labels.Labels
}

// selectSeries returns the series of src in [mint, maxt] that match ms,
// sorted by labels.
func (q *querier) selectSeries(mint, maxt int64, ms []*labels.Matcher) ([]selected, error) {
	sm, err := toSource(ms)
	if err != nil {
		return nil, err
	}
	infos, err := q.src.Select(sm, mint, maxt)
	if err != nil {
		return nil, fmt.Errorf("select series: %w", err)
	}
	out := make([]selected, 0, len(infos))
	for i := range infos {
		lset := seriesLabels(&infos[i])
		if matchesAll(lset, ms) {
			out = append(out, selected{si: infos[i], lset: lset})
		}
	}
	sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i].lset, out[j].lset) < 0 })
	return out, nil
}

func (q *querier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := q.mint, q.maxt
	noData := false
	limit := 0
	if hints != nil {
		if !hints.DisableTrimming {
			mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
		}
		noData = hints.Func == "series"
		limit = hints.Limit
	}
	if mint > maxt {
		return storage.EmptySeriesSet()
	}
	sel, err := q.selectSeries(mint, maxt, ms)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	if limit > 0 && len(sel) > limit {
		sel = sel[:limit]
	}
	return &seriesSet{ctx: ctx, src: q.src, sel: sel, mint: mint, maxt: maxt, noData: noData, i: -1}
}

// LabelValues asks the source itself only without matchers; with
// matchers it reads the matching series (see NewQueryable).
func (q *querier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	var vals []string
	if len(ms) == 0 {
		v, err := q.src.LabelValues(name, nil, q.mint, q.maxt)
		if err != nil {
			return nil, nil, fmt.Errorf("read label values: %w", err)
		}
		vals = slices.Clone(v)
	} else {
		sel, err := q.selectSeries(q.mint, q.maxt, ms)
		if err != nil {
			return nil, nil, err
		}
		for i := range sel {
			if v := sel[i].lset.Get(name); v != "" {
				vals = append(vals, v)
			}
		}
	}
	slices.Sort(vals)
	vals = slices.Compact(vals)
	vals, _ = hints.ApplyLimit(vals)
	return vals, nil, nil
}

// LabelNames is read from the matching series themselves, so that
// __name__ is there whenever a series is.
func (q *querier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	sel, err := q.selectSeries(q.mint, q.maxt, ms)
	if err != nil {
		return nil, nil, err
	}
	var names []string
	for i := range sel {
		sel[i].lset.Range(func(l labels.Label) { names = append(names, l.Name) })
	}
	slices.Sort(names)
	names = slices.Compact(names)
	names, _ = hints.ApplyLimit(names)
	return names, nil, nil
}

func (q *querier) Close() error { return nil }

// seriesSet walks the selected series, reading each one's points when it
// is reached.
type seriesSet struct {
	ctx        context.Context
	src        SampleSource
	sel        []selected
	mint, maxt int64
	noData     bool
	i          int
	cur        *promSeries
	err        error
}

func (s *seriesSet) Next() bool {
	if s.err != nil || s.i+1 >= len(s.sel) {
		return false
	}
	if err := s.ctx.Err(); err != nil {
		s.err = err
		return false
	}
	s.i++
	c := &s.sel[s.i]
	sr := &promSeries{lset: c.lset}
	if !s.noData {
		pts, err := s.src.Points(c.si.Ref, s.mint, s.maxt, nil)
		if err != nil {
			s.err = fmt.Errorf("read points of series %d: %w", c.si.Ref, err)
			return false
		}
		sr.pts = make(fsamples, len(pts))
		for i, p := range pts {
			sr.pts[i] = fsample{t: p.T, v: p.V}
		}
	}
	s.cur = sr
	return true
}

func (s *seriesSet) At() storage.Series                { return s.cur }
func (s *seriesSet) Err() error                        { return s.err }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

type promSeries struct {
	lset labels.Labels
	pts  fsamples
}

func (s *promSeries) Labels() labels.Labels { return s.lset }

// Iterator uses Prometheus's own list iterator over the points.
func (s *promSeries) Iterator(chunkenc.Iterator) chunkenc.Iterator {
	return storage.NewListSeriesIterator(s.pts)
}

// fsamples are float samples; a *fsample in a chunks.Sample interface
// costs no allocation.
type fsamples []fsample

func (p fsamples) Get(i int) chunks.Sample { return &p[i] }
func (p fsamples) Len() int                { return len(p) }

type fsample struct {
	t int64
	v float64
}

func (p *fsample) T() int64                      { return p.t }
func (p *fsample) ST() int64                     { return 0 }
func (p *fsample) F() float64                    { return p.v }
func (p *fsample) H() *histogram.Histogram       { return nil }
func (p *fsample) FH() *histogram.FloatHistogram { return nil }
func (p *fsample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (p *fsample) Copy() chunks.Sample           { c := *p; return &c }
