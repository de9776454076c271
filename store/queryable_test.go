package store

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// fakeSource is a SampleSource that keeps every call's matchers and, like
// a careless store, matches regexps unanchored (a superset).
type fakeSource struct {
	series []SeriesInfo
	pts    map[uint64][]Point
	calls  [][]Matcher
	err    error
}

func (f *fakeSource) value(s *SeriesInfo, name string) string {
	if name == "__name__" {
		return s.Name
	}
	for _, l := range s.Labels {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

func (f *fakeSource) match(s *SeriesInfo, ms []Matcher) bool {
	for _, m := range ms {
		v := f.value(s, m.Name)
		ok := true
		switch m.Type {
		case MatchEqual:
			ok = v == m.Value
		case MatchNotEqual:
			ok = v != m.Value
		case MatchRegexp:
			ok = regexp.MustCompile(m.Value).MatchString(v)
		case MatchNotRegexp:
			ok = !regexp.MustCompile(m.Value).MatchString(v)
		}
		if !ok {
			return false
		}
	}
	return true
}

func (f *fakeSource) Select(ms []Matcher, mint, maxt int64) ([]SeriesInfo, error) {
	f.calls = append(f.calls, ms)
	var out []SeriesInfo
	for i := range f.series {
		if f.match(&f.series[i], ms) {
			out = append(out, f.series[i])
		}
	}
	return out, f.err
}

func (f *fakeSource) Points(ref uint64, mint, maxt int64, dst []Point) ([]Point, error) {
	if f.err != nil {
		return nil, f.err
	}
	for _, p := range f.pts[ref] {
		if p.T >= mint && p.T <= maxt {
			dst = append(dst, p)
		}
	}
	return dst, nil
}

func (f *fakeSource) LabelNames(ms []Matcher, mint, maxt int64) ([]string, error) {
	return nil, errors.New("not used")
}

func (f *fakeSource) LabelValues(name string, ms []Matcher, mint, maxt int64) ([]string, error) {
	var out []string
	for i := range f.series {
		if f.match(&f.series[i], ms) {
			if v := f.value(&f.series[i], name); v != "" {
				out = append(out, v)
			}
		}
	}
	return out, nil
}

func newFake() *fakeSource {
	return &fakeSource{
		series: []SeriesInfo{
			{Ref: 1, Name: "pk_total", Labels: []Label{{"queue", "0"}}},
			{Ref: 2, Name: "pk_total", Labels: []Label{{"queue", "10"}}},
			{Ref: 3, Name: "active"},
			{Ref: 4, Name: "pk_total", Labels: []Label{{"job", "x"}, {"queue", "1"}}},
		},
		pts: map[uint64][]Point{
			1: {{1000, 1}, {2000, 2}, {3000, 3}, {4000, 4}},
			2: {{1000, 10}},
			3: {{2500, 0.5}},
			4: {{3000, 7}},
		},
	}
}

func selectAll(t *testing.T, q storage.Querier, hints *storage.SelectHints, ms ...*labels.Matcher) (names []string, pts [][]Point) {
	t.Helper()
	ss := q.Select(context.Background(), true, hints, ms...)
	for ss.Next() {
		s := ss.At()
		names = append(names, s.Labels().String())
		var p []Point
		it := s.Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			tm, v := it.At()
			p = append(p, Point{tm, v})
		}
		pts = append(pts, p)
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return names, pts
}

// TestQueryableMatchers: Prometheus's matcher semantics whatever the
// source does with them: regexps anchored, an empty value matching a
// missing label, series sorted by labels, points limited to the range.
func TestQueryableMatchers(t *testing.T) {
	f := newFake()
	q, _ := NewQueryable(f).Querier(1500, 3500)
	m := labels.MustNewMatcher
	for _, tc := range []struct {
		ms   []*labels.Matcher
		want []string
	}{
		{[]*labels.Matcher{m(labels.MatchEqual, "__name__", "pk_total")},
			[]string{`{__name__="pk_total", job="x", queue="1"}`, `{__name__="pk_total", queue="0"}`, `{__name__="pk_total", queue="10"}`}},
		{[]*labels.Matcher{m(labels.MatchEqual, "__name__", "pk_total"), m(labels.MatchRegexp, "queue", "1")},
			[]string{`{__name__="pk_total", job="x", queue="1"}`}}, // the source says 10 too: unanchored
		{[]*labels.Matcher{m(labels.MatchEqual, "__name__", "pk_total"), m(labels.MatchEqual, "job", "")},
			[]string{`{__name__="pk_total", queue="0"}`, `{__name__="pk_total", queue="10"}`}},
		{[]*labels.Matcher{m(labels.MatchRegexp, "__name__", ".+"), m(labels.MatchNotRegexp, "queue", "1.*")},
			[]string{`{__name__="active"}`, `{__name__="pk_total", queue="0"}`}},
		{[]*labels.Matcher{m(labels.MatchNotEqual, "queue", ""), m(labels.MatchRegexp, "job", "y|")},
			[]string{`{__name__="pk_total", queue="0"}`, `{__name__="pk_total", queue="10"}`}},
	} {
		got, _ := selectAll(t, q, nil, tc.ms...)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%v: %v, want %v", tc.ms, got, tc.want)
		}
		for _, sm := range f.calls[len(f.calls)-1] {
			if labels.MustNewMatcher(labels.MatchType(sm.Type), sm.Name, sm.Value).Matches("") {
				t.Errorf("%v: passed %v to the source, which matches the empty value", tc.ms, sm)
			}
		}
	}
	// Points in the querier's range, narrowed by the hints.
	_, pts := selectAll(t, q, nil, m(labels.MatchEqual, "queue", "0"))
	if !slices.Equal(pts[0], []Point{{2000, 2}, {3000, 3}}) {
		t.Errorf("points %v", pts)
	}
	_, pts = selectAll(t, q, &storage.SelectHints{Start: 2500, End: 9000}, m(labels.MatchEqual, "queue", "0"))
	if !slices.Equal(pts[0], []Point{{3000, 3}}) {
		t.Errorf("points with hints %v", pts)
	}
	_, pts = selectAll(t, q, &storage.SelectHints{Start: 0, End: 9000, Func: "series"}, m(labels.MatchEqual, "queue", "0"))
	if len(pts[0]) != 0 {
		t.Errorf("series hint read points %v", pts)
	}
	names, _ := selectAll(t, q, &storage.SelectHints{Start: 0, End: 9000, Limit: 1}, m(labels.MatchEqual, "__name__", "pk_total"))
	if len(names) != 1 {
		t.Errorf("limit 1: %v", names)
	}

	// Seek, as the engine uses it.
	ss := q.Select(context.Background(), false, &storage.SelectHints{Start: 0, End: 9000}, m(labels.MatchEqual, "queue", "0"))
	ss.Next()
	it := ss.At().Iterator(nil)
	if it.Seek(2500) != chunkenc.ValFloat || it.AtT() != 3000 || it.Seek(1000) != chunkenc.ValFloat || it.AtT() != 3000 ||
		it.Next() != chunkenc.ValNone {
		t.Errorf("seek: at %d", it.AtT())
	}
}

func TestQueryableLabels(t *testing.T) {
	f := newFake()
	q, _ := NewQueryable(f).Querier(0, 9000)
	ctx := context.Background()
	m := labels.MustNewMatcher
	names, _, err := q.LabelNames(ctx, nil)
	if err != nil || !slices.Equal(names, []string{"__name__", "job", "queue"}) {
		t.Errorf("names %v %v", names, err)
	}
	names, _, _ = q.LabelNames(ctx, nil, m(labels.MatchEqual, "__name__", "active"))
	if !slices.Equal(names, []string{"__name__"}) {
		t.Errorf("names of active %v", names)
	}
	vals, _, _ := q.LabelValues(ctx, "queue", nil, m(labels.MatchRegexp, "queue", "1"))
	if !slices.Equal(vals, []string{"1"}) {
		t.Errorf("values %v", vals)
	}
	vals, _, _ = q.LabelValues(ctx, "queue", &storage.LabelHints{Limit: 2})
	if !slices.Equal(vals, []string{"0", "1"}) {
		t.Errorf("values, limit 2: %v", vals)
	}
	vals, _, _ = q.LabelValues(ctx, "queue", nil, m(labels.MatchEqual, "job", ""))
	if !slices.Equal(vals, []string{"0", "10"}) {
		t.Errorf("values without job %v", vals)
	}
	vals, _, _ = q.LabelValues(ctx, "__name__", nil)
	if !slices.Equal(vals, []string{"active", "pk_total"}) {
		t.Errorf("names %v", vals)
	}
}

// TestQueryableErrors: the source's errors and a cancelled context end the
// series set with an error.
func TestQueryableErrors(t *testing.T) {
	f := newFake()
	q, _ := NewQueryable(f).Querier(0, 9000)
	m := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ss := q.Select(ctx, false, nil, m)
	if ss.Next() || !errors.Is(ss.Err(), context.Canceled) {
		t.Errorf("cancelled: %v", ss.Err())
	}
	f.err = errors.New("broken")
	ss = q.Select(context.Background(), false, nil, m)
	if ss.Next() || ss.Err() == nil {
		t.Errorf("source error: %v", ss.Err())
	}
	if _, _, err := q.LabelNames(context.Background(), nil); err == nil {
		t.Error("label names: no error")
	}
}
