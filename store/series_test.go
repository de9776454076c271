package store

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// matcherStore holds six series whose refs are 1..6 in this order.
func matcherStore(t *testing.T) *Store {
	s := openMem(t, vfs.NewMem(), Options{})
	t.Cleanup(func() { s.Close() })
	smp := []Sample{
		{Name: "up", Labels: []Label{{"instance", "x"}, {"job", "a"}}, Value: 1},
		{Name: "up", Labels: []Label{{"instance", "y"}, {"job", "b"}}, Value: 1},
		{Name: "up", Labels: []Label{{"instance", "z"}}, Value: 0},
		{Name: "http_total", Labels: []Label{{"code", "200"}, {"job", "a"}}, Value: 10},
		{Name: "http_total", Labels: []Label{{"code", "500"}, {"job", "a"}}, Value: 2},
		{Name: "foo", Labels: []Label{{"job", "a\nb"}}, Value: 3},
	}
	if err := s.Append(t0, smp); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMatchers(t *testing.T) {
	s := matcherStore(t)
	eq := func(n, v string) Matcher { return Matcher{MatchEqual, n, v} }
	ne := func(n, v string) Matcher { return Matcher{MatchNotEqual, n, v} }
	re := func(n, v string) Matcher { return Matcher{MatchRegexp, n, v} }
	nre := func(n, v string) Matcher { return Matcher{MatchNotRegexp, n, v} }
	// Expected sets follow Prometheus' documented semantics: a missing label
	// is "", regexps are fully anchored, and . matches a newline.
	cases := []struct {
		ms   []Matcher
		want []uint64
	}{
		{[]Matcher{eq("__name__", "up")}, []uint64{1, 2, 3}},
		{[]Matcher{eq("job", "a")}, []uint64{1, 4, 5}},
		{[]Matcher{ne("job", "a")}, []uint64{2, 3, 6}},
		{[]Matcher{eq("job", "")}, []uint64{3}},
		{[]Matcher{ne("job", "")}, []uint64{1, 2, 4, 5, 6}},
		{[]Matcher{re("job", "a|b")}, []uint64{1, 2, 4, 5}},
		{[]Matcher{re("job", "a")}, []uint64{1, 4, 5}},
		{[]Matcher{re("job", "a.*")}, []uint64{1, 4, 5, 6}},
		{[]Matcher{re("job", "a.b")}, []uint64{6}},
		{[]Matcher{re("job", "^a$")}, []uint64{1, 4, 5}},
		{[]Matcher{nre("job", "a|b")}, []uint64{3, 6}},
		{[]Matcher{re("job", ".*")}, []uint64{1, 2, 3, 4, 5, 6}},
		{[]Matcher{re("job", ".+")}, []uint64{1, 2, 4, 5, 6}},
		{[]Matcher{re("job", "b|")}, []uint64{2, 3}},
		{[]Matcher{re("__name__", "http_.*"), ne("code", "200")}, []uint64{5}},
		{[]Matcher{eq("__name__", "up"), nre("job", ".+")}, []uint64{3}},
		{[]Matcher{re("instance", "x|y")}, []uint64{1, 2}},
		{[]Matcher{ne("__name__", "up")}, []uint64{4, 5, 6}},
		{[]Matcher{eq("code", "404")}, nil},
		{[]Matcher{eq("nosuch", "")}, []uint64{1, 2, 3, 4, 5, 6}},
		{[]Matcher{re("job", "A")}, nil},
		{[]Matcher{re("job", "(?i)A")}, []uint64{1, 4, 5}},
		{nil, []uint64{1, 2, 3, 4, 5, 6}},
	}
	for _, c := range cases {
		got, err := s.Select(c.ms, t0.UnixMilli(), t0.UnixMilli())
		if err != nil {
			t.Fatalf("%v: %v", c.ms, err)
		}
		var refs []uint64
		for _, si := range got {
			refs = append(refs, si.Ref)
		}
		if !slices.Equal(refs, c.want) {
			t.Errorf("%v: got %v, want %v", c.ms, refs, c.want)
		}
	}
	if _, err := s.Select([]Matcher{re("job", "(")}, 0, t0.UnixMilli()); err == nil {
		t.Error("bad regexp: no error")
	}
	// Outside the stored time range nothing matches.
	later := t0.Add(3 * PartitionSpan).UnixMilli()
	if got, _ := s.Select(nil, later, later+1000); len(got) != 0 {
		t.Errorf("select after the data: %d series", len(got))
	}
	names, err := s.LabelNames([]Matcher{eq("__name__", "up")}, 0, later)
	if err != nil || !slices.Equal(names, []string{"__name__", "instance", "job"}) {
		t.Errorf("label names: %q, %v", names, err)
	}
	vals, err := s.LabelValues("job", nil, 0, later)
	if err != nil || !slices.Equal(vals, []string{"a", "a\nb", "b"}) {
		t.Errorf("label values: %q, %v", vals, err)
	}
	vals, err = s.LabelValues("__name__", []Matcher{eq("job", "a")}, 0, later)
	if err != nil || !slices.Equal(vals, []string{"http_total", "up"}) {
		t.Errorf("metric names: %q, %v", vals, err)
	}
}

func TestAppendEdges(t *testing.T) {
	s := openMem(t, vfs.NewMem(), Options{Interval: 5 * time.Second})
	defer s.Close()
	// Unsorted labels are the same series as sorted ones; a duplicate in
	// one tick keeps the last value; bad samples are skipped and counted.
	smp := []Sample{
		{Name: "m", Labels: []Label{{"b", "2"}, {"a", "1"}}, Value: 1},
		{Name: "m", Labels: []Label{{"a", "1"}, {"b", "2"}}, Value: 2},
		{Name: "", Value: 3},
		{Name: "m", Labels: []Label{{"a", "1"}, {"a", "2"}}, Value: 4},
		{Name: "m", Labels: []Label{{"__name__", "x"}}, Value: 5},
	}
	// 12:00:03.7 is aligned down to 12:00:00.
	if err := s.Append(t0.Add(3700*time.Millisecond), smp); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Select(nil, 0, t0.Add(time.Hour).UnixMilli())
	if len(got) != 1 || got[0].String() != `m{a="1",b="2"}` {
		t.Fatalf("series: %v", got)
	}
	pts, _ := s.Points(got[0].Ref, 0, t0.Add(time.Hour).UnixMilli(), nil)
	if len(pts) != 1 || pts[0] != (Point{t0.UnixMilli(), 2}) {
		t.Fatalf("points: %v", pts)
	}
	if st := s.Stats(); st.Rejected != 3 || st.Series != 1 || st.Samples != 1 {
		t.Errorf("stats: %+v", st)
	}
	// The same tick again, or an earlier one, is refused.
	for _, ts := range []time.Time{t0, t0.Add(4 * time.Second), t0.Add(-time.Hour)} {
		if err := s.Append(ts, smp[:1]); !errors.Is(err, ErrOutOfOrder) {
			t.Errorf("append at %s: %v, want ErrOutOfOrder", ts, err)
		}
	}
	if pts, _ := s.Points(99, 0, 1<<62, nil); len(pts) != 0 {
		t.Error("unknown ref has points")
	}
}

func TestReopenContinuesWindow(t *testing.T) {
	fs := vfs.NewMem()
	const n = 30
	s := openMem(t, fs, Options{Interval: 5 * time.Second})
	// Close in the middle of a window, reopen, append the rest: the
	// window's head survives and is chunked with the new ticks.
	gens := make([]*genSeries, n)
	for i := range gens {
		gens[i] = newGen(9, i)
	}
	smp := make([]Sample, n)
	const ticks = 2000
	for j := 0; j < ticks; j++ {
		if j == 500 || j == 1300 {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := s.Append(t0, smp); !errors.Is(err, ErrClosed) {
				t.Fatalf("append after close: %v", err)
			}
			s = openMem(t, fs, Options{Interval: 5 * time.Second})
			if s.Recovered() != "" {
				t.Fatalf("recovered after clean close: %q", s.Recovered())
			}
		}
		for i, g := range gens {
			smp[i] = Sample{Name: g.name, Labels: g.labels, Value: g.next()}
		}
		if err := s.Append(t0.Add(time.Duration(j)*5*time.Second), smp); err != nil {
			t.Fatal(err)
		}
	}
	checkSeries(t, s, n, ticks, t0, 5*time.Second, 9, 0)
	s.Close()
}

func TestOpenRefusesForeign(t *testing.T) {
	write := func(fs vfs.FS, name string, b []byte) {
		f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(b)
		f.Close()
	}
	rawPebble := func(fs vfs.FS, fn func(db *pebble.DB)) {
		db, err := pebble.Open("/db", &pebble.Options{FS: fs, Logger: pebbleLogger{slog.New(slog.DiscardHandler)}})
		if err != nil {
			t.Fatal(err)
		}
		fn(db)
		db.Close()
	}
	cases := []struct {
		name string
		make func(fs vfs.FS)
		want string
	}{
		{"other files", func(fs vfs.FS) {
			fs.MkdirAll("/db", 0o755)
			write(fs, "/db/notes.txt", []byte("hello"))
		}, "not a store"},
		{"pebble without marker", func(fs vfs.FS) {
			rawPebble(fs, func(db *pebble.DB) { db.Set([]byte("k"), []byte("v"), pebble.Sync) })
		}, "no format marker"},
		{"bad marker", func(fs vfs.FS) {
			rawPebble(fs, func(db *pebble.DB) { db.Set(metaMagic, []byte("someone-else1"), pebble.Sync) })
		}, "bad format marker"},
		{"newer version", func(fs vfs.FS) {
			rawPebble(fs, func(db *pebble.DB) { db.Set(metaMagic, append([]byte(magic), formatVersion+1), pebble.Sync) })
		}, fmt.Sprintf("format version %d", formatVersion+1)},
		{"version 0", func(fs vfs.FS) {
			rawPebble(fs, func(db *pebble.DB) { db.Set(metaMagic, append([]byte(magic), 0), pebble.Sync) })
		}, "format version 0"},
		{"garbage series", func(fs vfs.FS) {
			s, _ := Open("/db", Options{FS: fs})
			s.Close()
			rawPebble(fs, func(db *pebble.DB) { db.Set(seriesKey(1), []byte{0xff, 0xff}, pebble.Sync) })
		}, "read series 1"},
		{"garbage head", func(fs vfs.FS) {
			s, _ := Open("/db", Options{FS: fs})
			s.Close()
			rawPebble(fs, func(db *pebble.DB) { db.Set(headKey(5), []byte{3, 1}, pebble.Sync) })
		}, "corrupt head record"},
		{"garbage manifest", func(fs vfs.FS) {
			s, _ := Open("/db", Options{FS: fs})
			s.Close()
			ls, _ := fs.List("/db")
			for _, n := range ls {
				if strings.HasPrefix(n, "MANIFEST") {
					write(fs, "/db/"+n, []byte(strings.Repeat("garbage!", 100)))
				}
			}
		}, "open store"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := vfs.NewMem()
			c.make(fs)
			s, err := Open("/db", Options{FS: fs})
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
			t.Log(err)
		})
	}
	// A store already open (pebble's lock) is refused too.
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s2, err := Open(dir, Options{}); err == nil {
		s2.Close()
		t.Fatal("second open of a locked store succeeded")
	}
}

// FuzzOpen overwrites one file of a small store with fuzz bytes: Open
// returns an error or a store that answers queries, never panics.
func FuzzOpen(f *testing.F) {
	f.Add(uint8(0), []byte("garbage"))
	f.Add(uint8(1), []byte{})
	f.Add(uint8(2), []byte{0xff, 0, 1, 2, 3})
	f.Add(uint8(3), make([]byte, 64))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		fs := vfs.NewMem()
		s, err := Open("/db", Options{FS: fs})
		if err != nil {
			t.Fatal(err)
		}
		s.Append(t0, []Sample{{Name: "m", Value: 1}})
		s.Close()
		ls, _ := fs.List("/db")
		slices.Sort(ls)
		ls = slices.DeleteFunc(ls, func(n string) bool { return n == "LOCK" })
		name := "/db/" + ls[int(which)%len(ls)]
		fh, err := fs.Create(name, vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		fh.Write(data)
		fh.Close()
		s, err = Open("/db", Options{FS: fs})
		if err != nil {
			return
		}
		defer s.Close()
		ss, err := s.Select(nil, 0, 1<<62)
		if err != nil {
			return
		}
		for _, si := range ss {
			s.Points(si.Ref, 0, 1<<62, nil)
		}
		_ = fmt.Sprint(s.Stats())
	})
}

// TestIntervalChange reopens the store with other intervals (so other chunk
// windows); every sample stays readable, from any starting point.
func TestIntervalChange(t *testing.T) {
	fs := vfs.NewMem()
	var want []Point
	ts := t0
	for round, iv := range []time.Duration{10 * time.Second, 5 * time.Second, time.Second, time.Minute} {
		s := openMem(t, fs, Options{Interval: iv})
		ts = ts.Add(iv).Truncate(iv)
		for j := 0; j < 1500; j++ {
			v := float64(round*10000 + j)
			if err := s.Append(ts, []Sample{{Name: "m", Value: v}}); err != nil {
				t.Fatal(err)
			}
			want = append(want, Point{ts.UnixMilli(), v})
			ts = ts.Add(iv)
		}
		for _, from := range []int{0, 1, 700, 1499, 2000, 3100, len(want) - 1} {
			if from >= len(want) {
				continue
			}
			got, err := s.Points(1, want[from].T, math.MaxInt64, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want[from:]) {
				t.Fatalf("round %d from %d: %d points, want %d", round, from, len(got), len(want)-from)
			}
		}
		// Hour rollups agree with the raw samples.
		got, err := s.Rollup(1, time.Hour, math.MinInt64, math.MaxInt64, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantAgg := naiveRollup(want, 3600e3, math.MinInt64, math.MaxInt64)
		if len(got) != len(wantAgg) {
			t.Fatalf("round %d: %d hour buckets, want %d", round, len(got), len(wantAgg))
		}
		for i := range got {
			if got[i] != wantAgg[i] {
				t.Fatalf("round %d bucket %d: %+v, want %+v", round, i, got[i], wantAgg[i])
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAppendSeriesByPlace: an Append resolves a sample through the series
// at its place in the last tick only when name and labels are that
// series'; reordered samples, labels changed in place (the caller reuses
// its slices), a rejected sample and a new series at a known place all
// land in the right series.
func TestAppendSeriesByPlace(t *testing.T) {
	s := openMem(t, vfs.NewMem(), Options{})
	defer s.Close()
	step := DefaultInterval
	lab := []Label{{"x", "1"}}
	ticks := [][]Sample{
		{{Name: "a", Labels: lab, Value: 1}, {Name: "b", Value: 2}, {Name: "", Value: 9}},
		{{Name: "b", Value: 3}, {Name: "a", Labels: lab, Value: 4}, {Name: "c", Value: 5}},
		{{Name: "b", Value: 6}, {Name: "a", Labels: lab, Value: 7}, {Name: "c", Labels: []Label{{"y", "2"}, {"x", "1"}}, Value: 8}},
	}
	for k, tick := range ticks {
		if k == 2 {
			lab[0].Value = "2" // in place: a{x="2"} is a new series
		}
		if err := s.Append(t0.Add(time.Duration(k)*step), tick); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]float64{`a{x="1"}`: {1, 4}, `b`: {2, 3, 6}, `c`: {5}, `a{x="2"}`: {7}, `c{x="1",y="2"}`: {8}}
	infos, err := s.Select(nil, math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != len(want) {
		t.Fatalf("%d series, want %d: %+v", len(infos), len(want), infos)
	}
	for _, in := range infos {
		name := in.Name
		if len(in.Labels) > 0 {
			var ls []string
			for _, l := range in.Labels {
				ls = append(ls, fmt.Sprintf("%s=%q", l.Name, l.Value))
			}
			name += "{" + strings.Join(ls, ",") + "}"
		}
		pts, err := s.Points(in.Ref, math.MinInt64, math.MaxInt64, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got []float64
		for _, p := range pts {
			got = append(got, p.V)
		}
		if !slices.Equal(got, want[name]) {
			t.Errorf("%s: %v, want %v", name, got, want[name])
		}
	}
}
