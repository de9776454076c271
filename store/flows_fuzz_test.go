package store

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/netsentry/netsentry/flowtable"
)

// fuzzLog returns a FlowLog on a fresh in-memory DB holding a few hundred
// records of a few partitions, and those records in write order.
func fuzzLog(t testing.TB) (*FlowLog, []flowtable.Record) {
	f := openLog(t, memDB(t), FlowOptions{BlockRecords: 32, Partition: time.Minute})
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	var written []flowtable.Record
	for id := range uint64(20) {
		recs := synth(id, 15, func(i int) int64 { return base + int64(id)*7e9 + int64(i%4)*1e9 })
		if err := f.WriteFlows(recs); err != nil {
			t.Fatal(err)
		}
		written = append(written, recs...)
	}
	return f, written
}

// FuzzFlowQuery feeds the API's query parameters to ParseFlowQuery and,
// when they parse, to Query: errors are ErrBadQuery, never a panic, and a
// first page is the naive filter's first records.
func FuzzFlowQuery(f *testing.F) {
	f.Add("", "", "", "", "", "", "", "")
	f.Add("1764547200", "2026-12-01T00:02:00Z", "192.0.2.3", "80", "TCP", "Unknown", "7", "")
	f.Add("1764547200.5", "", "10.0.0.3", "40003", "udp", "", "1000", "")
	f.Add("", "", "", "", "", "", "10", encodeCursor(pos{last: time.Date(2026, 12, 1, 0, 1, 0, 0, time.UTC).UnixNano(), seq: 3, idx: 4}))
	f.Add("x", "1e300", "::1", "-1", "300", "HTTP", "0", "!!")
	f.Add("", "", "", "", "17", "", "1", "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	log, written := fuzzLog(f)
	f.Fuzz(func(t *testing.T, start, end, ip, port, proto, app, limit, cursor string) {
		params := map[string]string{"start": start, "end": end, "ip": ip, "port": port, "protocol": proto,
			"application_protocol": app, "limit": limit, "cursor": cursor}
		q, err := ParseFlowQuery(func(k string) string { return params[k] })
		if err != nil {
			if !errors.Is(err, ErrBadQuery) {
				t.Fatalf("parse error %v is not ErrBadQuery", err)
			}
			return
		}
		recs, next, err := log.Query(q)
		if err != nil {
			if !errors.Is(err, ErrBadQuery) {
				t.Fatalf("query error %v is not ErrBadQuery", err)
			}
			return
		}
		if len(recs) > q.Limit || (next != "") != (len(recs) == q.Limit) {
			t.Fatalf("%d records, limit %d, next %q", len(recs), q.Limit, next)
		}
		if q.Cursor != "" {
			return
		}
		nq := q
		if p, err := makePlan(q); err == nil && p.proto >= 0 {
			nq.Protocol = flowtable.ProtoName(uint8(p.proto))
		}
		nq.IP = q.IP.Unmap()
		want := naive(written, nq)
		want = want[:min(len(want), q.Limit)]
		got := make([]string, len(recs))
		for i := range recs {
			got[i] = js(&recs[i])
		}
		diff(t, "first page", got, want)
	})
}

// FuzzFlowCursor checks that a cursor that decodes encodes back to a
// cursor of the same position.
func FuzzFlowCursor(f *testing.F) {
	f.Add(encodeCursor(pos{last: 1, seq: 2, idx: 3}))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := decodeCursor(s)
		if err != nil {
			return
		}
		if q, err := decodeCursor(encodeCursor(p)); err != nil || q != p {
			t.Fatalf("cursor %+v does not round-trip: %+v %v", p, q, err)
		}
	})
}

// FuzzFlowBlock feeds garbage and mutated real blocks and summaries to the
// decoders: an error or records that render, never a panic.
func FuzzFlowBlock(f *testing.F) {
	log, recs := fuzzLog(f)
	replay(f, "zeek-http-bro.org.pcap", openLog(f, log.db, FlowOptions{})) // blocks with app metadata
	f.Add(legacyBlockV1(f, recs[:min(len(recs), 20)], 0))                  // the version 1 encodings
	f.Add(legacySummaryV1(1, recs[:min(len(recs), 20)]))
	it, err := log.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keyFlowSummary}, UpperBound: []byte{keyFlowBlock + 1}})
	if err != nil {
		f.Fatal(err)
	}
	n := 0
	for it.First(); it.Valid() && n < 64; it.Next() {
		f.Add(append([]byte(nil), it.Value()...))
		n++
	}
	it.Close()
	f.Add([]byte{1, 5, 0x28, 0xb5, 0x2f, 0xfd})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, _, err := log.decodeBlock(b, nil)
		if err == nil {
			for i := range recs {
				_ = recs[i].AppendJSON(nil, nil)
			}
			if len(recs) == 0 {
				t.Fatal("a block decoded to no records")
			}
		}
		if s, err := decodeSummary(b); err == nil {
			var p plan
			p.port, p.proto = 80, 6
			p.ip = netip.MustParseAddr("192.0.2.3")
			p.ipb = p.ip.AsSlice()
			p.ip4 = true
			p.app = "HTTP"
			_ = p.skip(&s)
		}
	})
}
