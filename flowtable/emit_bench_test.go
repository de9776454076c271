package flowtable

import "testing"

// BenchmarkEmit: the cost of writing one ended flow's record (Shard.emit,
// an active-timeout cut: the flow stays) into the buffers SetEndSwap goes
// round (16, as the exporter's; "hot": one, as BenchmarkFloodWorker's
// onEnd leaves it), for flows with a detection state (UDP with payload,
// "det") and without (TCP SYNs, "guess").
func BenchmarkEmit(b *testing.B) {
	for _, c := range []struct {
		det  bool
		bufs int
		name string
	}{{true, 16, "det"}, {false, 16, "guess"}, {true, 1, "det-hot"}, {false, 1, "guess-hot"}} {
		det := c.det
		b.Run(c.name, func(b *testing.B) {
			s, err := New(Config{MaxFlows: 1 << 14, Detect: true}, nil)
			if err != nil {
				b.Fatal(err)
			}
			bufs := make([][]Record, c.bufs)
			for i := range bufs {
				bufs[i] = make([]Record, 0, s.EndBuffer())
			}
			next := 0
			s.SetEndSwap(func(rs []Record) []Record {
				bufs[next] = rs
				next = (next + 1) % len(bufs)
				return bufs[next][:0]
			})
			payload := []byte("AAAAAAAAAAAAAAAAAA")
			const n = 1 << 13
			for i := range n {
				p := pkt(17, "198.18.0.1", uint16(1000+i), "198.19.0.1", uint16(30000+i), 0, 60)
				if det {
					p.PayloadLen = uint32(len(payload))
					s.Packet(p, payload, sec)
				} else {
					p = pkt(6, "198.18.0.1", uint16(1000+i), "198.19.0.1", uint16(30000+i), 0x02, 60)
					s.Packet(p, nil, sec)
				}
			}
			b.ResetTimer()
			i := uint32(1)
			for range b.N {
				e := s.slot(i)
				s.emit(i, e, EndActive)
				if i++; i >= s.used {
					i = 1
				}
			}
		})
	}
}
