package flowtable

import (
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
