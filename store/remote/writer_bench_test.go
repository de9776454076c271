package remote

import (
	"testing"
	"time"

	"github.com/netsentry/netsentry/store"
)

// BenchmarkTick: queueing one tick for the remote backend beside storing
// it in the local store (the peer), both on disk with a synced commit, on
// the 32-series tick of genTick; reports wall ns per sample (bound by the
// fsync of each commit).
func BenchmarkTick(b *testing.B) {
	st, err := store.Open(b.TempDir(), store.Options{Interval: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	opt := testOptions(VictoriaMetrics, "http://127.0.0.1:1", "bench")
	opt.MinBackoff, opt.MaxBackoff = time.Hour, time.Hour // the sender waits: the queue alone is measured
	w, err := Open(st.DB(), opt)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	tick := genTick(1)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	b.Run("local-store", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if err := st.Append(base.Add(time.Duration(i)*time.Second), tick); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(tick)), "ns/sample")
	})
	b.Run("remote-queue", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if err := w.Append(base.Add(time.Duration(i)*time.Second), tick); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(tick)), "ns/sample")
	})
}

// BenchmarkEncode: one request body of 100 ticks (3,200 samples), remote
// write beside line protocol.
func BenchmarkEncode(b *testing.B) {
	var ticks []tick
	for i := range 100 {
		ticks = append(ticks, tick{ts: int64(i) * 1000, samples: genTick(i)})
	}
	n := 100 * len(genTick(0))
	for _, e := range []struct {
		name string
		enc  encoder
	}{{"prometheus", newPromEncoder("bench")}, {"influxdb", &influxEncoder{sensor: "bench"}}} {
		b.Run(e.name, func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			var size int
			for b.Loop() {
				out, _ := e.enc.encode(buf, ticks)
				buf, size = out, len(out)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sample")
			b.ReportMetric(float64(size)/float64(n), "bytes/sample")
		})
	}
}
