package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/netsentry/netsentry/engine"
	"github.com/netsentry/netsentry/flowtable"
	"github.com/netsentry/netsentry/internal/testcorpus"
)

// The FlowLog is an engine sink by its method set.
var (
	_ engine.Sink  = (*FlowLog)(nil)
	_ engine.Named = (*FlowLog)(nil)
)

func memDB(t testing.TB) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("db", &pebble.Options{FS: vfs.NewMem(), Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// quiet is a pebble logger that keeps its notes to itself.
type quiet struct{}

func (quiet) Infof(string, ...any)           {}
func (quiet) Errorf(string, ...any)          {}
func (quiet) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }

func openLog(t testing.TB, db *pebble.DB, opt FlowOptions) *FlowLog {
	t.Helper()
	f, err := OpenFlowLog(db, opt)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// collect is a sink keeping a copy of every record, in the order received.
type collect struct{ recs []flowtable.Record }

func (c *collect) WriteFlows(r []flowtable.Record) error { c.recs = append(c.recs, r...); return nil }
func (c *collect) Close() error                          { return nil }

// replay runs a corpus capture through the engine with extra sinks beside
// a collector, and returns the records the collector got.
func replay(t testing.TB, name string, sinks ...engine.Sink) []flowtable.Record {
	t.Helper()
	rf, err := engine.OpenFile(testcorpus.Path(t, name))
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	col := &collect{}
	x := engine.NewExporter(4, true, append([]engine.Sink{col}, sinks...)...)
	sh, err := flowtable.New(flowtable.Config{Detect: true}, x.Send)
	if err != nil {
		t.Fatal(err)
	}
	w := engine.NewWorker(sh)
	if _, err := engine.Replay(context.Background(), rf, w, engine.ReplayOptions{}); err != nil {
		t.Fatalf("replay %s: %v", name, err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	for _, s := range x.Stats() {
		if s.Dropped != 0 {
			t.Fatalf("sink %s dropped %d records", s.Name, s.Dropped)
		}
	}
	return col.recs
}

func js(r *flowtable.Record) string { return string(r.AppendJSON(nil, nil)) }

// naive returns the records of written (in write order) that match q's
// filters, newest first by last_seen, later writes first among equals: the
// order Query promises, computed without the store.
func naive(written []flowtable.Record, q FlowQuery) []string {
	type e struct {
		i int
		r *flowtable.Record
	}
	var m []e
	for i := range written {
		r := &written[i]
		if !q.Start.IsZero() && r.Last < q.Start.UnixNano() || !q.End.IsZero() && r.Last > q.End.UnixNano() {
			continue
		}
		if q.IP.IsValid() && flowtable.IP(&r.Src, r.IPVersion) != q.IP && flowtable.IP(&r.Dst, r.IPVersion) != q.IP {
			continue
		}
		if q.Port >= 0 && int(r.SrcPort) != q.Port && int(r.DstPort) != q.Port {
			continue
		}
		if q.Protocol != "" && !strings.EqualFold(flowtable.ProtoName(r.Proto), q.Protocol) {
			continue
		}
		if q.AppProtocol != "" && !strings.EqualFold(r.AppName(), q.AppProtocol) {
			continue
		}
		m = append(m, e{i, r})
	}
	sort.Slice(m, func(a, b int) bool {
		if m[a].r.Last != m[b].r.Last {
			return m[a].r.Last > m[b].r.Last
		}
		return m[a].i > m[b].i
	})
	out := make([]string, len(m))
	for i := range m {
		out[i] = js(m[i].r)
	}
	return out
}

// all pages through q and returns every record's JSON, checking that a
// page is full exactly when a cursor follows it.
func all(t testing.TB, f *FlowLog, q FlowQuery, between func()) []string {
	t.Helper()
	var out []string
	for pages := 0; ; pages++ {
		recs, next, err := f.Query(q)
		if err != nil {
			t.Fatalf("query %+v: %v", q, err)
		}
		if len(recs) > q.Limit || (next != "") != (len(recs) == q.Limit) {
			t.Fatalf("page of %d (limit %d) with next %q", len(recs), q.Limit, next)
		}
		for i := range recs {
			out = append(out, js(&recs[i]))
		}
		if next == "" {
			return out
		}
		if pages > 1e5 {
			t.Fatal("paging does not end")
		}
		q.Cursor = next
		if between != nil {
			between()
		}
	}
}

func diff(t testing.TB, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Fatalf("%s: record %d\n got %s\nwant %s", what, i, got[i], want[i])
		}
	}
}

func anyQuery(limit int) FlowQuery { return FlowQuery{Port: -1, Limit: limit} }

// corpusLog replays captures with a FlowLog as one of the engine's sinks
// (a new one per capture: the exporter closes its sinks) and returns a
// FlowLog reopened on the same DB and the records the engine exported, in
// order.
func corpusLog(t testing.TB, opt FlowOptions, names ...string) (*FlowLog, []flowtable.Record) {
	db := memDB(t)
	var recs []flowtable.Record
	for _, n := range names {
		recs = append(recs, replay(t, n, openLog(t, db, opt))...)
	}
	return openLog(t, db, opt), recs
}

// roundTripCaptures are real captures with HTTP, TLS, DNS, SMTP, FTP
// metadata, IPv6, a tunnel, a SYN scan (many short flows) and damaged
// packets.
var roundTripCaptures = []string{"zeek-http-bro.org.pcap", "ndpi-1kxun.pcap", "ndpi-synscan.pcap", "ndpi-badpackets.pcap",
	"ndpi-http_ipv6.pcap", "zeek-erspan.pcap", "ndpi-chrome.pcap", "gopacket-test_dns.pcap", "zeek-smtp.pcap",
	"zeek-ftp-ipv4.pcap", "zeek-tls-tls13-ech.pcap", "ndpi-dns_fragmented.pcap"}

// TestFlowRoundTrip replays real captures into the FlowLog as an engine
// sink: every record comes back with every field of its --flows-out JSON
// equal, app metadata included, newest first.
func TestFlowRoundTrip(t *testing.T) {
	f, recs := corpusLog(t, FlowOptions{}, roundTripCaptures...)
	if len(recs) < 2000 {
		t.Fatalf("only %d records from %v", len(recs), roundTripCaptures)
	}
	apps := 0
	for i := range recs {
		if j := recs[i].App.AppendJSON(nil); len(j) > 2 && !bytes.Contains(j, []byte("guess")) {
			apps++
		}
	}
	if apps < 100 {
		t.Fatalf("only %d records with app metadata", apps)
	}
	diff(t, "all records", all(t, f, anyQuery(1000), nil), naive(recs, anyQuery(1000)))
	st := f.Stats()
	var jsonBytes int
	for i := range recs {
		jsonBytes += len(js(&recs[i])) + 1
	}
	t.Logf("%d records (%d with app metadata), %d blocks, %d partitions: %.1f bytes/record stored (keys, summaries, blocks), JSONL %.1f bytes/record",
		st.Records, apps, st.Blocks, st.Partitions, float64(st.Bytes)/float64(st.Records), float64(jsonBytes)/float64(len(recs)))
	if st.Records != int64(len(recs)) {
		t.Fatalf("stats count %d records, wrote %d", st.Records, len(recs))
	}
}

// TestFlowFilters checks every filter, alone and combined, against a naive
// filter of the same records, over all pages.
func TestFlowFilters(t *testing.T) {
	f, recs := corpusLog(t, FlowOptions{BlockRecords: 64}, roundTripCaptures...)
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func() *flowtable.Record { return &recs[rng.IntN(len(recs))] }
	lasts := make([]int64, len(recs))
	for i := range recs {
		lasts[i] = recs[i].Last
	}
	slices.Sort(lasts)
	var qs []FlowQuery
	for range 12 {
		r := pick()
		qs = append(qs,
			FlowQuery{IP: flowtable.IP(&r.Src, r.IPVersion), Port: -1},
			FlowQuery{IP: flowtable.IP(&r.Dst, r.IPVersion), Port: -1},
			FlowQuery{Port: int(r.SrcPort)},
			FlowQuery{Port: int(r.DstPort)},
			FlowQuery{Port: -1, Protocol: flowtable.ProtoName(r.Proto)},
			FlowQuery{Port: -1, AppProtocol: r.AppName()},
			FlowQuery{Port: -1, AppProtocol: strings.ToLower(r.AppName()), Protocol: strings.ToLower(flowtable.ProtoName(r.Proto))},
			FlowQuery{IP: flowtable.IP(&r.Src, r.IPVersion), Port: int(r.DstPort), Protocol: flowtable.ProtoName(r.Proto)},
		)
		a, b := lasts[rng.IntN(len(lasts))], lasts[rng.IntN(len(lasts))]
		a, b = min(a, b), max(a, b)
		qs = append(qs,
			FlowQuery{Start: time.Unix(0, a), End: time.Unix(0, b), Port: -1},
			FlowQuery{Start: time.Unix(0, a), Port: -1},
			FlowQuery{End: time.Unix(0, b), Port: -1, IP: flowtable.IP(&r.Dst, r.IPVersion)},
			FlowQuery{Start: time.Unix(0, a), End: time.Unix(0, a), Port: -1},
		)
	}
	var v6 []*flowtable.Record
	for i := range recs {
		if recs[i].IPVersion == 6 {
			v6 = append(v6, &recs[i])
		}
	}
	if len(v6) < 5 {
		t.Fatalf("only %d IPv6 records", len(v6))
	}
	for range 5 {
		r := v6[rng.IntN(len(v6))]
		qs = append(qs, FlowQuery{IP: flowtable.IP(&r.Src, 6), Port: -1}, FlowQuery{IP: flowtable.IP(&r.Dst, 6), Port: int(r.DstPort)})
	}
	qs = append(qs,
		FlowQuery{IP: netip.MustParseAddr("203.0.113.77"), Port: -1},
		FlowQuery{IP: netip.MustParseAddr("2001:db8::77"), Port: -1},
		FlowQuery{Port: 1},
		FlowQuery{Port: -1, Protocol: "SCTP"},
		FlowQuery{Port: -1, AppProtocol: "NoSuchApp"},
		FlowQuery{Port: -1, Start: time.Unix(0, lasts[len(lasts)-1]+1)},
	)
	matched := 0
	for i, q := range qs {
		want := naive(recs, q)
		matched += len(want)
		for _, limit := range []int{1000, 1 + rng.IntN(40)} {
			q.Limit = limit
			diff(t, "query "+queryString(q), all(t, f, q, nil), want)
		}
		if t.Failed() {
			t.Fatalf("query %d %+v failed", i, q)
		}
	}
	if matched < len(qs)*5 {
		t.Fatalf("the queries matched only %d records in all", matched)
	}
	// A protocol given by number is the same filter.
	q := FlowQuery{Port: -1, Protocol: "17", Limit: 1000}
	q2 := q
	q2.Protocol = "UDP"
	diff(t, "protocol 17", all(t, f, q, nil), naive(recs, q2))
}

func queryString(q FlowQuery) string {
	var b strings.Builder
	b.WriteString("ip=" + q.IP.String() + " port=" + itoa(q.Port) + " proto=" + q.Protocol + " app=" + q.AppProtocol + " limit=" + itoa(q.Limit))
	if !q.Start.IsZero() {
		b.WriteString(" start=" + q.Start.UTC().Format(time.RFC3339Nano))
	}
	if !q.End.IsZero() {
		b.WriteString(" end=" + q.End.UTC().Format(time.RFC3339Nano))
	}
	return b.String()
}

func itoa(i int) string { return strconv.Itoa(i) }

// synth returns n distinct synthetic records (PacketsTx holds id+i) with
// last_seen from last(i).
func synth(id uint64, n int, last func(i int) int64) []flowtable.Record {
	out := make([]flowtable.Record, n)
	for i := range out {
		r := &out[i]
		r.IPVersion = 4
		r.Src = [16]byte{10, 0, byte(i >> 8), byte(i)}
		r.Dst = [16]byte{192, 0, 2, byte(id)}
		r.SrcPort, r.DstPort = uint16(40000+i), uint16(80+id%3)
		r.Proto = []uint8{6, 17, 1}[(id+uint64(i))%3]
		r.PacketsTx = id<<20 | uint64(i)
		r.PacketsRx, r.BytesTx, r.BytesRx = uint64(i), uint64(i)*60, id
		r.IPBytesTx, r.IPBytesRx = uint64(i)*46, id*3+uint64(i)
		r.Last = last(i)
		r.First = r.Last - int64(i)*1e6
		r.End = flowtable.EndIdle
	}
	return out
}

// TestFlowPagingWhileWriting pages through the history while records are
// written between pages: newer ones, and ones with the last_seen of a record
// already returned or still to come. The pages hold every record there at
// the first page, in the naive order, no duplicate, no gap; a record written
// later appears exactly when it sorts below the cursor (older, or tied with a
// record still to come).
func TestFlowPagingWhileWriting(t *testing.T) {
	db := memDB(t)
	f := openLog(t, db, FlowOptions{BlockRecords: 50, Partition: time.Minute})
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	var written []flowtable.Record
	rng := rand.New(rand.NewPCG(3, 4))
	for id := range uint64(40) {
		recs := synth(id, 1+rng.IntN(30), func(int) int64 { return base + rng.Int64N(20*60)*1e9 })
		if err := f.WriteFlows(recs); err != nil {
			t.Fatal(err)
		}
		written = append(written, recs...)
	}
	want := naive(written, anyQuery(1))
	id := uint64(100)
	var mustShow, mustNot []string
	var got []string
	q := anyQuery(7)
	for {
		recs, next, err := f.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for i := range recs {
			got = append(got, js(&recs[i]))
		}
		if next == "" {
			break
		}
		q.Cursor = next
		cur := recs[len(recs)-1].Last
		newer := synth(id, 2, func(i int) int64 { return base + int64(time.Hour) + int64(i) })
		tie := synth(id+1, 1, func(int) int64 { return cur })
		older := synth(id+2, 1, func(int) int64 { return cur - 1 - rng.Int64N(int64(time.Minute)) })
		id += 3
		for _, rs := range [][]flowtable.Record{newer, tie, older} {
			if err := f.WriteFlows(rs); err != nil {
				t.Fatal(err)
			}
			written = append(written, rs...)
		}
		for i := range newer {
			mustNot = append(mustNot, js(&newer[i]))
		}
		mustNot = append(mustNot, js(&tie[0]))
		mustShow = append(mustShow, js(&older[0]))
	}
	seen := map[string]bool{}
	for _, s := range got {
		if seen[s] {
			t.Fatalf("duplicate record %s", s)
		}
		seen[s] = true
	}
	for _, s := range mustNot {
		if seen[s] {
			t.Fatalf("a record sorting above the cursor came in a later page: %s", s)
		}
	}
	for _, s := range mustShow {
		if !seen[s] {
			t.Fatalf("a record written below the cursor is missing: %s", s)
		}
	}
	// got is the naive order of everything written, restricted to what it
	// holds; and it holds every record there at the start.
	var order []string
	for _, s := range naive(written, anyQuery(1)) {
		if seen[s] {
			order = append(order, s)
		}
	}
	diff(t, "pages in the naive order", got, order)
	var start []string
	for _, s := range got {
		if slices.Contains(want, s) {
			start = append(start, s)
		}
	}
	diff(t, "the records there at the first page", start, want)
	// A walk after the writes sees everything.
	diff(t, "a fresh walk", all(t, f, anyQuery(13), nil), naive(written, anyQuery(1)))
	checkFlowBytes(t, db, f)
}

// keysIn lists the DB's keys with first byte in [lo, hi).
func keysIn(t testing.TB, db *pebble.DB, lo, hi byte) [][]byte {
	t.Helper()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{lo}, UpperBound: []byte{hi}})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out [][]byte
	for it.First(); it.Valid(); it.Next() {
		out = append(out, slices.Clone(it.Key()))
	}
	return out
}

// TestFlowRetention writes ten hours of records and checks that Enforce
// drops exactly the partitions that ended at or before now minus the
// retention: their records are gone and no key of theirs is left, every
// other record is still there.
func TestFlowRetention(t *testing.T) {
	db := memDB(t)
	f := openLog(t, db, FlowOptions{Retention: 3 * time.Hour, BlockRecords: 40})
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(5, 6))
	var written []flowtable.Record
	for id := range uint64(200) {
		recs := synth(id, 1+rng.IntN(20), func(int) int64 { return base.UnixNano() + rng.Int64N(int64(10*time.Hour)) })
		if err := f.WriteFlows(recs); err != nil {
			t.Fatal(err)
		}
		written = append(written, recs...)
	}
	if got := f.Stats().Partitions; got != 10 {
		t.Fatalf("%d partitions, want 10", got)
	}
	now := base.Add(10*time.Hour + 30*time.Minute) // cut at 07:30: partitions 00..06 ended before it
	if err := f.Enforce(now); err != nil {
		t.Fatal(err)
	}
	cut := base.Add(7 * time.Hour).UnixNano()
	var kept []flowtable.Record
	for _, r := range written {
		if r.Last >= cut {
			kept = append(kept, r)
		}
	}
	if len(kept) == len(written) || len(kept) == 0 {
		t.Fatalf("bad test: %d of %d kept", len(kept), len(written))
	}
	diff(t, "after retention", all(t, f, anyQuery(1000), nil), naive(kept, anyQuery(1)))
	st := f.Stats()
	if st.Partitions != 3 || st.Records != int64(len(kept)) {
		t.Fatalf("stats %+v, want 3 partitions, %d records", st, len(kept))
	}
	for _, k := range keysIn(t, db, keyFlowSummary, keyFlowPart+1) {
		if p := unflip(k[1:9]); p < cut/int64(time.Hour) {
			t.Fatalf("key %x of dropped partition %d left", k, p)
		}
	}
	// Enforce again at the same time drops nothing more; reopening keeps the
	// totals.
	if err := f.Enforce(now); err != nil {
		t.Fatal(err)
	}
	f2 := openLog(t, db, FlowOptions{Retention: 3 * time.Hour})
	if st.DroppedRetention != 7 || st.DroppedDiskCap != 0 {
		t.Fatalf("dropped by retention %d, by the disk cap %d; want 7, 0", st.DroppedRetention, st.DroppedDiskCap)
	}
	// Counted since open: the reopened history has dropped nothing.
	st.Committed, st.DroppedRetention = 0, 0
	if f2.Stats() != st {
		t.Fatalf("reopened stats %+v, want %+v", f2.Stats(), st)
	}
	// A different partition length than the stored one is refused.
	if _, err := OpenFlowLog(db, FlowOptions{Partition: time.Minute}); err == nil {
		t.Fatal("a different partition length was accepted")
	}
}

// TestFlowDiskCap writes far more than the cap, enforcing after every
// batch: the bytes stay under the cap, what is kept is the newest
// partitions whole, and after the compaction Enforce runs the DB's own
// estimate of the flow keys' disk use is under the cap too.
func TestFlowDiskCap(t *testing.T) {
	db := memDB(t)
	const capBytes = 64 << 10
	f := openLog(t, db, FlowOptions{MaxDiskBytes: capBytes, Partition: time.Minute, BlockRecords: 100})
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	rng := rand.New(rand.NewPCG(7, 8))
	var written []flowtable.Record
	last := base
	for id := range uint64(400) {
		recs := synth(id, 50, func(int) int64 { last += rng.Int64N(int64(2 * time.Second)); return last })
		for i := range recs { // less compressible: random counters
			recs[i].BytesTx, recs[i].PacketsRx = rng.Uint64N(1<<40), rng.Uint64N(1<<20)
		}
		if err := f.WriteFlows(recs); err != nil {
			t.Fatal(err)
		}
		written = append(written, recs...)
		if err := f.Enforce(time.Unix(0, last)); err != nil {
			t.Fatal(err)
		}
		if b := f.Stats().Bytes; b > capBytes {
			t.Fatalf("after batch %d: %d bytes, cap %d", id, b, capBytes)
		}
		checkFlowBytes(t, db, f)
	}
	st := f.Stats()
	if st.Records == int64(len(written)) || st.Records == 0 {
		t.Fatalf("bad test: %d of %d records kept", st.Records, len(written))
	}
	// The kept records are the newest whole partitions.
	got := all(t, f, anyQuery(1000), nil)
	want := naive(written, anyQuery(1))[:len(got)]
	diff(t, "kept records", got, want)
	oldest := written[0].Last
	for _, r := range written {
		if s := js(&r); s == got[len(got)-1] {
			oldest = r.Last
		}
	}
	for _, r := range written {
		if r.Last/int64(time.Minute) == oldest/int64(time.Minute) && !slices.Contains(got, js(&r)) {
			t.Fatalf("the oldest kept partition is not whole")
		}
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Enforce(time.Unix(0, last)); err != nil {
		t.Fatal(err)
	}
	if err := db.Compact(context.Background(), []byte{keyFlowMeta}, []byte{keyFlowPart + 1}, false); err != nil {
		t.Fatal(err)
	}
	du, err := db.EstimateDiskUsage([]byte{keyFlowMeta}, []byte{keyFlowPart + 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cap %d: %d bytes counted, %d on disk (pebble's estimate after compaction), %d of %d records kept in %d partitions",
		capBytes, st.Bytes, du, st.Records, len(written), st.Partitions)
	if du > capBytes {
		t.Fatalf("disk use %d over the cap %d", du, capBytes)
	}
}

// TestFlowBadQueries: each query that cannot be answered is an error that
// httpd recognises as the request's fault (BadRequest, errors.Is
// ErrBadQuery); a closed log refuses writes.
func TestFlowBadQueries(t *testing.T) {
	f, _ := fuzzLog(t)
	now := time.Now()
	good, next, err := f.Query(FlowQuery{Port: -1, Limit: 2})
	if err != nil || len(good) != 2 || next == "" {
		t.Fatalf("good query: %d records, next %q, %v", len(good), next, err)
	}
	for _, q := range []FlowQuery{
		{Port: -1, Limit: 0},
		{Port: -1, Limit: 1001},
		{Port: -2, Limit: 1},
		{Port: 65536, Limit: 1},
		{Port: -1, Limit: 1, Start: now, End: now.Add(-time.Second)},
		{Port: -1, Limit: 1, Protocol: "NOPE"},
		{Port: -1, Limit: 1, Protocol: "256"},
		{Port: -1, Limit: 1, Cursor: "garbage"},
		{Port: -1, Limit: 1, Cursor: next[:len(next)-1] + "A"},
		{Port: -1, Limit: 1, Cursor: next + "AA"},
	} {
		_, _, err := f.Query(q)
		var br interface{ BadRequest() bool }
		if err == nil || !errors.Is(err, ErrBadQuery) || !errors.As(err, &br) || !br.BadRequest() {
			t.Errorf("query %+v: error %v, want a bad request", q, err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.WriteFlows(synth(1, 1, func(int) int64 { return 1 })); err == nil {
		t.Fatal("a closed flow log took a write")
	}
}

// TestFlowConcurrent queries while another goroutine writes and enforces
// (run it with -race): every page is newest first and within its limit.
func TestFlowConcurrent(t *testing.T) {
	f := openLog(t, memDB(t), FlowOptions{BlockRecords: 20, Partition: time.Minute, MaxDiskBytes: 32 << 10})
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	done := make(chan error)
	go func() {
		var err error
		for id := range uint64(300) {
			if err = f.WriteFlows(synth(id, 7, func(i int) int64 { return base + int64(id)*1e9 + int64(i) })); err != nil {
				break
			}
			if err = f.Enforce(time.Unix(0, base+int64(id)*1e9)); err != nil {
				break
			}
		}
		done <- err
	}()
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		default:
		}
		q := anyQuery(9)
		for range 5 {
			recs, next, err := f.Query(q)
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i < len(recs); i++ {
				if recs[i].Last > recs[i-1].Last {
					t.Fatal("page not newest first")
				}
			}
			if next == "" {
				break
			}
			q.Cursor = next
		}
	}
}

// checkFlowBytes checks the partitions' byte totals against the keys and
// values stored (the totals keys themselves counted at partKeyBytes each).
func checkFlowBytes(t testing.TB, db *pebble.DB, f *FlowLog) {
	t.Helper()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{keyFlowSummary}, UpperBound: []byte{keyFlowBlock + 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var n int64
	for it.First(); it.Valid(); it.Next() {
		n += int64(len(it.Key()) + len(it.Value()))
	}
	st := f.Stats()
	if want := st.Bytes - int64(st.Partitions)*partKeyBytes; n != want {
		t.Fatalf("summaries and blocks hold %d bytes, the totals say %d", n, want)
	}
}
