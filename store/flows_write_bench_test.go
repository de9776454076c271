package store

import (
	"github.com/cockroachdb/pebble/v2/vfs"
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"testing"

	"github.com/netsentry/netsentry/decode"
	"github.com/netsentry/netsentry/flowtable"
)

// floodRecords returns n ended flow records of the bench-live flood, made
// by a flow table as the daemon makes them (detection on): every packet a
// new 5-tuple (a random 16-bit host part of the source in 198.18.0.0/16,
// random ports, TCP SYNs and UDP alternately), one packet per flow, in a
// full table where every new flow evicts the oldest, at 0.27 M packets/s.
func floodRecords(tb testing.TB, n int) []flowtable.Record {
	var out []flowtable.Record
	s, err := flowtable.New(flowtable.Config{MaxFlows: 1 << 12, Detect: true, MaxHosts: 1 << 17}, func(rs []flowtable.Record) {
		out = append(out, rs...)
	})
	if err != nil {
		tb.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	ts := int64(1_796_000_000_000_000_000) // 2026-11-30
	for i := 0; len(out) < n; i++ {
		src := decode.Addr{198, 18, byte(r.Uint32()), byte(r.Uint32())}
		dst := decode.Addr{198, 19, 0, 1}
		proto, flags := uint8(6), uint8(decode.TCPSyn)
		if i%2 == 1 {
			proto, flags = 17, 0
		}
		p := decode.Packet{WireLen: 60, HasFlow: true, TCPFlags: flags, NumIP: 1}
		p.Flow = decode.Tuple{Src: src, Dst: dst, SrcPort: uint16(r.Uint32()), DstPort: uint16(r.Uint32()), Proto: proto, IPVersion: 4}
		p.IP[0] = decode.IPLayer{Src: src, Dst: dst, IPVersion: 4}
		p.IPLen[0] = 46
		ts += 3700 // ns
		s.Packet(&p, nil, ts)
	}
	return out[:n]
}

// procCPU returns the process's user and system CPU time, ns (pebble's
// flushes and compactions included).
func procCPU() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkFlowWriteFlood: the flood's ended flows (floodRecords) written
// to the flow history of a store on a real directory (so the syncs, the
// memtable flushes and the compactions are the daemon's) in the batch
// sizes the sensor's group sink hands over, with the codec this build
// writes (s2) and with zstd. It reports the process's CPU ns per record,
// pebble's flushes and compactions included, the stored and WAL bytes per
// record, and the bytes pebble's flushes and compactions wrote per WAL
// byte.
func BenchmarkFlowWriteFlood(b *testing.B) {
	recs := floodRecords(b, 1<<13)
	for _, batch := range []int{256, 2048, 4096} {
		for _, codec := range []byte{codecS2, codecZstd} {
			b.Run("batch"+strconv.Itoa(batch)+"/"+codecName[codec], func(b *testing.B) {
				defer func(c byte) { blockCodec = c }(blockCodec)
				blockCodec = codec
				opt := Options{}
				if os.Getenv("FLOODMEM") != "" {
					opt.FS = vfs.NewMem()
				}
				s, err := Open(b.TempDir(), opt)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				f := openLog(b, s.DB(), FlowOptions{})
				defer f.Close()
				work := make([]flowtable.Record, batch)
				var shift int64
				b.ReportAllocs()
				cpu0 := procCPU()
				n := 0
				for b.Loop() {
					k := n % len(recs)
					if k+batch > len(recs) {
						k = 0
					}
					if k == 0 && n > 0 {
						shift += recs[len(recs)-1].Last - recs[0].Last + 1
					}
					copy(work, recs[k:k+batch])
					for i := range work {
						work[i].Last += shift
						work[i].First += shift
					}
					if err := f.WriteFlows(work); err != nil {
						b.Fatal(err)
					}
					n = k + batch
				}
				st := f.Stats()
				b.ReportMetric(float64(procCPU()-cpu0)/float64(b.N*batch), "cpu-ns/record")
				b.ReportMetric(float64(st.Bytes)/float64(st.Records), "B/record")
				b.ReportMetric(float64(st.Committed)/float64(st.Records), "WAL-B/record")
				m := s.DB().Metrics()
				tot := m.Total()
				b.ReportMetric(float64(tot.TableBytesCompacted+tot.TableBytesFlushed)/float64(st.Committed), "pebble-write-amp")
			})
		}
	}
}

var codecName = map[byte]string{codecS2: "s2", codecZstd: "zstd"}

// BenchmarkFlowEncodeFlood: the CPU of coding the flood's records
// (floodRecords, 16 Ki of them: 9 MiB, more than the caches hold, as a
// group sink's backlog is) into blocks of 512 with their summaries, no
// pebble: "once" is this build's encoder (blockEnc, each record coded as
// it arrives), "ref" the previous build's (the whole block coded from
// records copied into it, refEncodeBlock and refSummarize), its peer in
// the same run.
func BenchmarkFlowEncodeFlood(b *testing.B) {
	recs := floodRecords(b, 1<<14)
	const n = defaultBlockRecords
	b.Run("once", func(b *testing.B) {
		f := &FlowLog{}
		e := &blockEnc{}
		b.ReportAllocs()
		k := 0
		for b.Loop() {
			for i := range n {
				e.add(&recs[(k+i)%len(recs)], i == 0, n)
			}
			f.value(e, 0)
			f.summarize(1, e, 0)
			e.reset()
			k += n
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
	})
	b.Run("ref", func(b *testing.B) {
		blk := make([]flowtable.Record, 0, n)
		b.ReportAllocs()
		k := 0
		for b.Loop() {
			blk = blk[:0]
			for i := range n {
				blk = append(blk, recs[(k+i)%len(recs)])
			}
			refEncodeBlock(blk, 0)
			refSummarize(1, blk)
			k += n
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
	})
}
