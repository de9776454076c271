package flowtable

import (
	"reflect"
	"strings"
	"testing"

	"github.com/netsentry/netsentry/decode"
)

// TestEmitOverUsedBuffers: the records a shard writes into buffers that
// held its earlier records (SetEndSwap's buffers going round) are, every
// byte of them (the App arena past its used bytes too), those it writes
// into new, zeroed buffers: emit writes each field and clears what a
// longer earlier record left in the arena, without writing the whole
// Record. The flows alternate between DNS queries of names of many lengths
// (arena strings), SYNs without payload (a port guess, no state) and
// other transports (no App at all).
func TestEmitOverUsedBuffers(t *testing.T) {
	run := func(reuse bool) []Record {
		s, err := New(Config{MaxFlows: 64, Detect: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got []Record
		bufs := [][]Record{make([]Record, 0, s.EndBuffer()), make([]Record, 0, s.EndBuffer())}
		next := 0
		s.SetEndSwap(func(rs []Record) []Record {
			got = append(got, rs...)
			if !reuse {
				return make([]Record, 0, s.EndBuffer())
			}
			bufs[next] = rs
			next ^= 1
			return bufs[next][:0]
		})
		ts := sec
		for i := range 5000 {
			ts += 1000
			sp := uint16(10000 + i)
			switch i % 4 {
			case 0, 1:
				name := strings.Repeat("a", 1+(i*7)%60)
				q := []byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, byte(len(name))}
				q = append(append(q, name...), 3, 'c', 'o', 'm', 0, 0, 1, 0, 1)
				p := pkt(17, "10.3.0.1", sp, "10.3.0.3", 53, 0, 80)
				p.PayloadLen = uint32(len(q))
				s.Packet(p, q, ts)
			case 2:
				s.Packet(pkt(6, "10.3.0.1", sp, "10.3.0.2", 443, decode.TCPSyn, 60), nil, ts)
			case 3:
				s.Packet(pkt(47, "10.3.0.1", 0, "10.3.1.2", 0, 0, 60+uint32(i%3)), nil, ts)
			}
		}
		s.Flush(EndEndOfCapture)
		return got
	}
	fresh, reused := run(false), run(true)
	if len(fresh) != len(reused) || len(fresh) < 3000 {
		t.Fatalf("%d and %d records", len(fresh), len(reused))
	}
	for i := range fresh {
		if fresh[i] != reused[i] {
			t.Fatalf("record %d written over an earlier one differs:\n%+v\nin a new buffer:\n%+v", i, reused[i], fresh[i])
		}
	}
}

// TestRecordFixedNoPointers: the fields before App, which CopyOver copies
// as bytes, hold no pointers.
func TestRecordFixedNoPointers(t *testing.T) {
	rt := reflect.TypeOf(Record{})
	for i := range rt.NumField() {
		f := rt.Field(i)
		if f.Offset >= fixedBytes {
			break
		}
		switch f.Type.Kind() {
		case reflect.Array, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Int64:
			if f.Type.Kind() == reflect.Array && f.Type.Elem().Kind() != reflect.Uint8 {
				t.Errorf("field %s: %s", f.Name, f.Type)
			}
		default:
			t.Errorf("field %s before App is a %s: CopyOver copies them as bytes", f.Name, f.Type)
		}
	}
}

// TestRecordCopyOver: CopyOver into a buffer going round makes the bytes
// that a whole copy into a zeroed Record makes, for the records of
// TestEmitOverUsedBuffers' traffic (and labels).
func TestRecordCopyOver(t *testing.T) {
	var recs []Record
	s, err := New(Config{MaxFlows: 64, Detect: true}, func(rs []Record) { recs = append(recs, rs...) })
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3000 {
		sp := uint16(10000 + i)
		name := strings.Repeat("b", 1+(i*13)%70)
		q := []byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, byte(len(name))}
		q = append(append(q, name...), 3, 'c', 'o', 'm', 0, 0, 1, 0, 1)
		if i%3 == 0 {
			q = nil
		}
		p := pkt(17, "10.3.0.1", sp, "10.3.0.3", 53, 0, 80)
		p.PayloadLen = uint32(len(q))
		s.Packet(p, q, sec+int64(i))
	}
	s.Flush(EndEndOfCapture)
	for i := range recs {
		if i%7 == 0 {
			recs[i].AppLabel, recs[i].AppLabelGuess = "X", true
		}
	}
	buf := make([]Record, 100)
	for i := range recs {
		d := &buf[i%len(buf)]
		d.CopyOver(&recs[i])
		if *d != recs[i] {
			t.Fatalf("record %d: %+v\nwant %+v", i, *d, recs[i])
		}
	}
}

// BenchmarkRecordCopy: a group sink's copy of a batch of 256 ended flood
// records (of 16 Ki, 9 MiB: cold, as the shard's batches are to the sink)
// into its buffer of 2,048: appended whole ("append"), or by CopyOver.
func BenchmarkRecordCopy(b *testing.B) {
	s, _ := budgetShard(b)
	var recs []Record
	s.SetEndSwap(func(rs []Record) []Record { recs = append(recs, rs...); return rs[:0] })
	ps := benchPackets(1<<15, true)
	for i := 0; len(recs) < 1<<14; i++ {
		if i == len(ps) {
			s.Flush(EndEviction)
			break
		}
		s.Packet(&ps[i], nil, 1e9)
	}
	s.Flush(EndEviction)
	recs = recs[:1<<14]
	const batch, group = 256, 2048
	dst := make([]Record, 0, group)
	b.Run("append", func(b *testing.B) {
		k := 0
		for b.Loop() {
			if len(dst)+batch > group {
				clear(dst) // as the group sink does
				dst = dst[:0]
			}
			dst = append(dst, recs[k:k+batch]...)
			k = (k + batch) % len(recs)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/record")
	})
	dst = dst[:0]
	b.Run("over", func(b *testing.B) {
		k := 0
		for b.Loop() {
			if len(dst)+batch > group {
				for i := range dst {
					if dst[i].AppLabel != "" {
						dst[i].AppLabel = "" // as the group sink does
					}
				}
				dst = dst[:0]
			}
			n := len(dst)
			dst = dst[:n+batch]
			for i := range batch {
				dst[n+i].CopyOver(&recs[k+i])
			}
			k = (k + batch) % len(recs)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/record")
	})
}
