package app

import (
	"path/filepath"
	"testing"
)

// The peer for these figures is nDPI: `ndpiReader -i FILE -q` on the same
// corpus prints its whole-pipeline throughput (decode, flow table and DPI),
// which bench/ compares with NetSentry's whole pipeline. These benchmarks
// time detection alone.

// BenchmarkFeedCorpus feeds every packet of the shared corpus, flow by flow,
// and reports the cost per packet.
func BenchmarkFeedCorpus(b *testing.B) {
	flows := corpusPackets(b)
	pool := NewPool(64)
	n := 0
	for _, fl := range flows {
		n += len(fl)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var s State
	for range b.N {
		for _, fl := range flows {
			s = State{}
			for _, p := range fl {
				s.Feed(pool, p.payload, p.fromInit, p.l4, p.srcPort, p.dstPort)
			}
			s.Release(pool)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/packet")
}

func benchFlow(b *testing.B, pkts []packet) {
	pool := NewPool(4)
	b.ReportAllocs()
	b.ResetTimer()
	var s State
	for range b.N {
		s = State{}
		for _, p := range pkts {
			s.Feed(pool, p.payload, p.fromInit, p.l4, p.srcPort, p.dstPort)
		}
		s.Release(pool)
	}
}

// BenchmarkTLSClientHello: a ClientHello in one segment (SNI, ALPN, JA3, JA4).
func BenchmarkTLSClientHello(b *testing.B) {
	benchFlow(b, []packet{{records(specHello(), 16384), true, 6, 50000, 443}})
}

// BenchmarkTLSClientHelloSplit: the same hello in two segments (pool slot).
func BenchmarkTLSClientHelloSplit(b *testing.B) {
	h := records(specHello(), 16384)
	benchFlow(b, []packet{{h[:100], true, 6, 50000, 443}, {h[100:], true, 6, 50000, 443}})
}

// BenchmarkQUICInitial: key derivation, header protection removal,
// deciphering and ClientHello parse of RFC 9001's client Initial.
func BenchmarkQUICInitial(b *testing.B) {
	benchFlow(b, []packet{{readHex(b, filepath.Join("testdata", "rfc9001-a2-client-initial.hex")), true, 17, 50000, 443}})
}

// BenchmarkDNSMessage: one query on an established DNS flow, fed with the
// shard's Pool as a flow table does.
func BenchmarkDNSMessage(b *testing.B) {
	benchDNS(b, dnsQuery(7, "www.example.com", 1))
}

// BenchmarkDNSMessageSteady: a datagram of make bench-live's steady shape
// (18 bytes 'A' to port 53) on its established flow.
func BenchmarkDNSMessageSteady(b *testing.B) {
	benchDNS(b, []byte("AAAAAAAAAAAAAAAAAA"))
}

func benchDNS(b *testing.B, m []byte) {
	pool := NewPool(1)
	var s State
	s.Feed(pool, m, true, 17, 50000, 53)
	b.ReportAllocs()
	for range b.N {
		s.Feed(pool, m, true, 17, 50000, 53)
	}
}

// BenchmarkHTTPRequest: request and response of a plain HTTP flow.
func BenchmarkHTTPRequest(b *testing.B) {
	benchFlow(b, []packet{
		{[]byte("GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\n\r\n"), true, 6, 50000, 80},
		{[]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), false, 6, 80, 50000},
	})
}

// BenchmarkFeedDone: the cost of a packet of a flow that is already Done.
func BenchmarkFeedDone(b *testing.B) {
	var s State
	s.Feed(nil, []byte("SSH-2.0-a\r\n"), true, 6, 50000, 22)
	s.Feed(nil, []byte("SSH-2.0-b\r\n"), false, 6, 22, 50000)
	p := []byte("encrypted stuff")
	b.ReportAllocs()
	for range b.N {
		s.Feed(nil, p, true, 6, 50000, 22)
	}
}
