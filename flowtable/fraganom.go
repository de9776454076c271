package flowtable

import "github.com/netsentry/netsentry/decode"

// FragAnomalies are one source address's IP fragment anomalies since it
// entered the table: Tiny first fragments (too short for the transport
// header, RFC 1858), fragments that Overlap data already received for their
// datagram, and overlaps whose bytes Conflict with it. Last is the time of
// the latest (Unix ns).
type FragAnomalies struct {
	Addr                    decode.Addr
	IPVersion               uint8
	Tiny, Overlap, Conflict uint64
	Last                    int64
}

// Total is the sum of the three counts.
func (a *FragAnomalies) Total() uint64 { return a.Tiny + a.Overlap + a.Conflict }

const (
	anomTiny = iota
	anomOverlap
	anomConflict
)

// fragSourcesSize is the number of slots of a shard's fragment-anomaly
// table (64 bytes each: 64 KiB); sources beyond it replace the quietest of
// fragSourceProbe candidates.
const fragSourcesSize = 1024

// fragSourceProbe is how many slots a lookup tries before replacing one.
const fragSourceProbe = 8

type fragSource struct {
	FragAnomalies
	used bool
}

// fragSources counts fragment anomalies per source address in a fixed
// open-addressing table; it never allocates after init.
type fragSources struct {
	slots   []fragSource
	mask    uint32
	live    int
	evicted uint64
}

func (t *fragSources) init(n int) {
	t.slots = make([]fragSource, n)
	t.mask = uint32(n - 1)
}

func (t *fragSources) add(a *decode.Addr, v uint8, kind int, now int64) {
	k := Key{A: *a, IPVersion: v}
	h := k.hash() & t.mask
	victim := -1
	for i := uint32(0); i < fragSourceProbe; i++ {
		j := int((h + i) & t.mask)
		e := &t.slots[j]
		if !e.used {
			t.live++
			*e = fragSource{used: true, FragAnomalies: FragAnomalies{Addr: *a, IPVersion: v}}
			t.count(e, kind, now)
			return
		}
		if e.Addr == *a && e.IPVersion == v {
			t.count(e, kind, now)
			return
		}
		if victim < 0 || e.Total() < t.slots[victim].Total() {
			victim = j
		}
	}
	t.evicted++
	e := &t.slots[victim]
	*e = fragSource{used: true, FragAnomalies: FragAnomalies{Addr: *a, IPVersion: v}}
	t.count(e, kind, now)
}

func (t *fragSources) count(e *fragSource, kind int, now int64) {
	switch kind {
	case anomTiny:
		e.Tiny++
	case anomOverlap:
		e.Overlap++
	default:
		e.Conflict++
	}
	e.Last = now
}

// FragmentAnomalies appends the fragment anomaly counts of every source
// that had one to dst (the future network.fragment_anomalies per src_ip).
// Call it from the shard's goroutine; the records are copies.
func (s *Shard) FragmentAnomalies(dst []FragAnomalies) []FragAnomalies {
	t := &s.frags.anom
	if t.live == 0 {
		return dst
	}
	for i := range t.slots {
		if t.slots[i].used {
			dst = append(dst, t.slots[i].FragAnomalies)
		}
	}
	return dst
}

// MergeFragAnomalies sums the per-source counts of several shards (a source
// may send fragments that several shards see); the latest time wins.
func MergeFragAnomalies(lists ...[]FragAnomalies) []FragAnomalies {
	type key struct {
		a decode.Addr
		v uint8
	}
	idx := map[key]int{}
	var out []FragAnomalies
	for _, l := range lists {
		for _, a := range l {
			k := key{a.Addr, a.IPVersion}
			i, ok := idx[k]
			if !ok {
				idx[k] = len(out)
				out = append(out, a)
				continue
			}
			o := &out[i]
			o.Tiny += a.Tiny
			o.Overlap += a.Overlap
			o.Conflict += a.Conflict
			o.Last = max(o.Last, a.Last)
		}
	}
	return out
}
