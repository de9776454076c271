package app

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

// packet is one payload of a recorded flow.
type packet struct {
	payload          []byte
	fromInit         bool
	l4               uint8
	srcPort, dstPort uint16
}

// corpusPackets returns every flow of the corpus as its packet sequence,
// plus the RFC 9001 QUIC Initial and a ClientHello split in two segments.
func corpusPackets(t testing.TB) [][]packet {
	t.Helper()
	var flows [][]packet
	for _, path := range corpusFiles(t) {
		index := map[flowKey]int{}
		init := map[flowKey]endpoint{}
		_ = readCapture(path, func(link layers.LinkType, data []byte) {
			fr, ok := decodeFrame(link, data)
			if !ok {
				return
			}
			k := flowKey{makePair(fr.l4, fr.src, fr.dst), fr.vlan}
			i, seen := index[k]
			if !seen {
				i = len(flows)
				index[k] = i
				init[k] = fr.src
				flows = append(flows, nil)
			}
			flows[i] = append(flows[i], packet{bytes.Clone(fr.payload), fr.src == init[k], fr.l4, fr.src.port, fr.dst.port})
		})
	}
	quic := readHex(t, filepath.Join("testdata", "rfc9001-a2-client-initial.hex"))
	hello := records(specHello(), 16384)
	flows = append(flows,
		[]packet{{quic, true, 17, 50000, 443}},
		[]packet{{hello[:100], true, 6, 50000, 443}, {hello[100:], true, 6, 50000, 443}},
	)
	return flows
}

// TestFeedDoesNotAllocate feeds every packet of the corpus, with the
// reassembly pool, and renders every flow's JSON into a reused buffer.
func TestFeedDoesNotAllocate(t *testing.T) {
	flows := corpusPackets(t)
	pool := NewPool(64)
	var s State
	buf := make([]byte, 0, 4096)
	n := 0
	allocs := testing.AllocsPerRun(3, func() {
		for _, fl := range flows {
			s = State{}
			for _, p := range fl {
				s.Feed(pool, p.payload, p.fromInit, p.l4, p.srcPort, p.dstPort)
				n++
			}
			s.Release(pool)
			buf = s.AppendJSON(buf[:0])
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per replay of %d flows", allocs, len(flows))
	}
	t.Logf("%d flows, %d packets per run: 0 allocations", len(flows), n/4)
}
