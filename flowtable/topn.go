package flowtable

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/netsentry/netsentry/decode/app"
)

// FlowOrder is what a top-N selection of open flows ranks by.
type FlowOrder uint8

// The orders of the connections endpoint.
const (
	ByBytes    FlowOrder = iota // bytes both ways
	ByPackets                   // packets both ways
	ByDuration                  // Last - First
)

// FlowQuery asks for the Limit open flows with the largest By among those
// that match every filter set. The filters are exact: a shard applies them
// to each open flow while it selects, so a query for rare flows finds them
// all, whatever the table holds. A FlowQuery is comparable (a map key for
// sharing one selection among the requests that ask the same).
type FlowQuery struct {
	Limit int
	By    FlowOrder
	// Proto is the transport protocol's name as ProtoName gives it, in
	// any case ("" any).
	Proto string
	// App is the application protocol's name as Record.AppName gives it,
	// in any case ("" any).
	App string
	// Host, when valid, is an address at either end (IPv4-mapped IPv6
	// addresses are compared unmapped).
	Host netip.Addr
	// Port, when HasPort, is a port at either end.
	Port    uint16
	HasPort bool
}

// value is r's rank under order by.
func (by FlowOrder) value(pkts, bytes [2]uint64, first, last int64) uint64 {
	switch by {
	case ByPackets:
		return pkts[0] + pkts[1]
	case ByDuration:
		return uint64(max(last-first, 0))
	}
	return bytes[0] + bytes[1]
}

// RecordValue is r's rank under order by.
func (by FlowOrder) RecordValue(r *Record) uint64 {
	return by.value([2]uint64{r.PacketsTx, r.PacketsRx}, [2]uint64{r.BytesTx, r.BytesRx}, r.First, r.Last)
}

// Match reports whether r passes q's filters: the definition that
// Shard.TopFlows applies to the live entries.
func (q *FlowQuery) Match(r *Record) bool {
	if q.Proto != "" && !strings.EqualFold(ProtoName(r.Proto), q.Proto) {
		return false
	}
	if q.HasPort && r.SrcPort != q.Port && r.DstPort != q.Port {
		return false
	}
	if h := q.Host.Unmap(); h.IsValid() && IP(&r.Src, r.IPVersion) != h && IP(&r.Dst, r.IPVersion) != h {
		return false
	}
	if q.App != "" && !strings.EqualFold(r.AppName(), q.App) {
		return false
	}
	return true
}

// topSlot is one candidate of a selection: its rank and slot.
type topSlot struct {
	v uint64
	i uint32
}

// worse orders candidates for the selection's min-heap: a lower rank is
// worse, and of equal ranks the later slot (the order Snapshot lists them).
func worse(a, b topSlot) bool { return a.v < b.v || a.v == b.v && a.i > b.i }

// TopFlows appends to dst the q.Limit open flows of the shard that match q
// with the largest q.By, largest first (ties: the order Snapshot lists
// them), as Snapshot makes them without detail (AppLabel set). It reads
// every open entry once and keeps a heap of q.Limit candidates; only the
// winners are copied, so its memory is O(q.Limit) whatever the table
// holds. The application-protocol filter costs a look at each entry's
// detection state; the others read the entry alone. Call it from the
// shard's owner, between batches.
func (s *Shard) TopFlows(q *FlowQuery, dst []Record) []Record {
	if q.Limit <= 0 {
		return dst
	}
	var protos [256]bool
	if q.Proto != "" {
		for p := range protos {
			protos[p] = strings.EqualFold(ProtoName(uint8(p)), q.Proto)
		}
	}
	host := q.Host.Unmap()
	heap := make([]topSlot, 0, min(q.Limit, 1024))
	for i := uint32(1); i < s.used; i++ {
		e := s.slot(i)
		if e.q == queueNone || e.pkts[0]+e.pkts[1] == 0 {
			continue
		}
		c := topSlot{q.By.value(e.pkts, e.bytes, e.first, e.last), i}
		if len(heap) == q.Limit && !worse(heap[0], c) {
			continue
		}
		k := &e.key
		if q.Proto != "" && !protos[k.Proto] {
			continue
		}
		if q.HasPort && k.PortA != q.Port && k.PortB != q.Port {
			continue
		}
		if host.IsValid() && IP(&k.A, k.IPVersion) != host && IP(&k.B, k.IPVersion) != host {
			continue
		}
		if q.App != "" {
			if name, _ := s.appLabel(i, e); !strings.EqualFold(name, q.App) {
				continue
			}
		}
		if len(heap) < q.Limit {
			heap = append(heap, c)
			siftUp(heap, len(heap)-1)
			continue
		}
		heap[0] = c
		siftDown(heap, 0)
	}
	slices.SortFunc(heap, func(a, b topSlot) int {
		switch {
		case worse(b, a):
			return -1
		case worse(a, b):
			return 1
		}
		return 0
	})
	for _, c := range heap {
		e := s.slot(c.i)
		dst = append(dst, Record{})
		r := &dst[len(dst)-1]
		e.record(r, EndNone)
		s.appOf(c.i, e, &r.App) // the whole detection state: the API shows its metadata
	}
	return dst
}

// appLabel is the application protocol of the open flow e (slot i) and
// whether it is a port guess, as Snapshot labels it.
func (s *Shard) appLabel(i uint32, e *entry) (string, bool) {
	if e.det != 0 {
		st := s.app(e.det)
		return st.Name(), st.Guess
	}
	var st app.State
	s.appOf(i, e, &st)
	return st.Name(), st.Guess
}

func siftUp(h []topSlot, j int) {
	for j > 0 {
		p := (j - 1) / 2
		if !worse(h[j], h[p]) {
			return
		}
		h[j], h[p] = h[p], h[j]
		j = p
	}
}

func siftDown(h []topSlot, j int) {
	for {
		l := 2*j + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && worse(h[r], h[l]) {
			m = r
		}
		if !worse(h[m], h[j]) {
			return
		}
		h[j], h[m] = h[m], h[j]
		j = m
	}
}

// MergeTop merges the top lists of several shards (each as TopFlows made
// it, in shard order) into the q.Limit largest, largest first; ties keep
// the earlier shard first, as if the shards' flows were listed one shard
// after the other.
func MergeTop(q *FlowQuery, parts ...[]Record) []Record {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]Record, 0, min(n, max(q.Limit, 0)))
	pos := make([]int, len(parts))
	for len(out) < q.Limit {
		best := -1
		var bv uint64
		for k, p := range parts {
			if pos[k] == len(p) {
				continue
			}
			if v := q.By.RecordValue(&p[pos[k]]); best < 0 || v > bv {
				best, bv = k, v
			}
		}
		if best < 0 {
			break
		}
		out = append(out, parts[best][pos[best]])
		pos[best]++
	}
	return out
}

// TopRecords is the selection TopFlows makes, over records already copied
// (a snapshot's): the q.Limit records that match q with the largest q.By,
// largest first, ties in their order in recs.
func TopRecords(q *FlowQuery, recs []Record) []Record {
	var out []Record
	for i := range recs {
		if q.Match(&recs[i]) {
			out = append(out, recs[i])
		}
	}
	slices.SortStableFunc(out, func(a, b Record) int {
		va, vb := q.By.RecordValue(&a), q.By.RecordValue(&b)
		switch {
		case va > vb:
			return -1
		case va < vb:
			return 1
		}
		return 0
	})
	return out[:min(len(out), max(q.Limit, 0))]
}
