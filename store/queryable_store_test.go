//go:build withstore

// This test needs the store of issue 11's CORE part (Open, Append); it was
// run against it in a merged tree. Remove the build line above once both
// are merged.

package store

import (
	"context"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/promql"
)

// TestQueryableStore: PromQL over the pebble store (*Store through
// NewQueryable) gives bit-for-bit the points it gives over the same
// samples in memory (the source TestPromQLOracle compares with a real
// Prometheus).
func TestQueryableStore(t *testing.T) {
	st, err := Open("db", Options{FS: vfs.NewMem(), Retention: 3650 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mem := &fakeSource{pts: map[uint64][]Point{}}
	ref := map[string]uint64{}
	add := func(name string, tm int64, v float64, ls ...Label) {
		k := name
		for _, l := range ls {
			k += "," + l.Name + "=" + l.Value
		}
		r, ok := ref[k]
		if !ok {
			r = uint64(len(mem.series) + 1)
			ref[k] = r
			mem.series = append(mem.series, SeriesInfo{Ref: r, Name: name, Labels: ls})
		}
		mem.pts[r] = append(mem.pts[r], Point{tm, v})
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	base := time.Unix(1780000000, 0)
	var pk [4]float64
	for i := 0; i < 1440; i++ {
		ts := base.Add(time.Duration(i) * 5 * time.Second)
		var smp []Sample
		for q := range 4 {
			pk[q] += float64(rnd.IntN(1000))
			ls := []Label{{"queue", strconv.Itoa(q)}}
			smp = append(smp, Sample{Name: "pk_total", Labels: ls, Value: pk[q]})
			add("pk_total", ts.UnixMilli(), pk[q], ls...)
		}
		g := rnd.Float64() * 100
		smp = append(smp, Sample{Name: "gauge", Value: g})
		add("gauge", ts.UnixMilli(), g)
		if err := st.Append(ts, smp); err != nil {
			t.Fatal(err)
		}
	}
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 5e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	n := 0
	for _, q := range []string{"pk_total", "rate(pk_total[1m])", "sum by (queue) (increase(pk_total[5m]))", "avg_over_time(gauge[10m])",
		"deriv(gauge[5m])", `pk_total{queue=~"1|2"}`, `topk(2, pk_total)`, `gauge > 50`} {
		var res [2]promql.Matrix
		for i, qb := range []SampleSource{st, mem} {
			qr, err := eng.NewRangeQuery(context.Background(), NewQueryable(qb), nil, q, base.Add(-time.Minute), base.Add(2*time.Hour+time.Minute), 15*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			r := qr.Exec(context.Background())
			if r.Err != nil {
				t.Fatal(q, r.Err)
			}
			res[i] = r.Value.(promql.Matrix)
		}
		if len(res[0]) != len(res[1]) {
			t.Fatalf("%s: %d vs %d series", q, len(res[0]), len(res[1]))
		}
		for i := range res[0] {
			a, b := res[0][i], res[1][i]
			if a.Metric.String() != b.Metric.String() || len(a.Floats) != len(b.Floats) {
				t.Fatalf("%s: %v %d vs %v %d", q, a.Metric, len(a.Floats), b.Metric, len(b.Floats))
			}
			for j := range a.Floats {
				if a.Floats[j].T != b.Floats[j].T || math.Float64bits(a.Floats[j].F) != math.Float64bits(b.Floats[j].F) {
					t.Fatalf("%s %v point %d: %v vs %v", q, a.Metric, j, a.Floats[j], b.Floats[j])
				}
				n++
			}
		}
	}
	t.Logf("%d points bit-equal between the pebble store and memory", n)
}
