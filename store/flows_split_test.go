package store

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/netsentry/netsentry/flowtable"
)

// TestFlowTablesSplitByPrefix writes a flood's records (several
// memtables' worth, so that pebble flushes and compacts) and time-series
// ticks into one store, and checks every table pebble wrote: none holds
// keys of two flow history prefixes (0x20 to 0x23), nor flow keys and
// keys outside the history (flowSpans). A table from the first new
// summary to the last new block would hold every older block within its
// bounds, and each compaction out of L0 would rewrite them all.
func TestFlowTablesSplitByPrefix(t *testing.T) {
	s, err := Open(t.TempDir(), Options{FS: vfs.NewMem(), Interval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f := openLog(t, s.DB(), FlowOptions{})
	defer f.Close()
	recs := floodRecords(t, 1<<13)
	work := make([]flowtable.Record, 2048)
	tick := time.Unix(0, recs[0].Last).Truncate(time.Second)
	rounds := 40
	if testing.Short() {
		rounds = 20
	}
	var shift int64
	for round := range rounds {
		for k := 0; k < len(recs); k += len(work) {
			copy(work, recs[k:k+len(work)])
			for i := range work {
				work[i].Last += shift
				work[i].First += shift
			}
			if err := f.WriteFlows(work); err != nil {
				t.Fatal(err)
			}
			tick = tick.Add(time.Second)
			if err := s.Append(tick, []Sample{{Name: "netsentry_test_total", Value: float64(round*len(recs) + k)}}); err != nil {
				t.Fatal(err)
			}
		}
		shift += recs[len(recs)-1].Last - recs[0].Last + 1
	}
	if err := s.DB().Flush(); err != nil {
		t.Fatal(err)
	}
	levels, err := s.DB().SSTables()
	if err != nil {
		t.Fatal(err)
	}
	span := func(k []byte) int {
		if k[0] >= keyFlowMeta && k[0] <= keyFlowPart {
			return int(k[0])
		}
		return -1 // outside the flow history: the span before or after it
	}
	tables := 0
	for l, ts := range levels {
		for _, ti := range ts {
			tables++
			lo, hi := ti.Smallest.UserKey, ti.Largest.UserKey
			if span(lo) != span(hi) || (span(lo) < 0 && (lo[0] < keyFlowMeta) != (hi[0] < keyFlowMeta)) {
				t.Errorf("L%d table %s spans %x to %x", l, ti.FileNum, lo, hi)
			}
		}
	}
	m := s.DB().Metrics()
	tot := m.Total()
	st := f.Stats()
	t.Logf("%d tables; %d records, %d WAL bytes; pebble wrote %.2f bytes a WAL byte (flushes %d, compactions %d bytes)",
		tables, st.Records, st.Committed, float64(tot.TableBytesFlushed+tot.TableBytesCompacted)/float64(st.Committed),
		tot.TableBytesFlushed, tot.TableBytesCompacted)
	if tables < 4 {
		t.Fatalf("bad test: %d tables", tables)
	}
}
