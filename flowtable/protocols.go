package flowtable

import (
	"sort"
	"unsafe"

	"github.com/netsentry/netsentry/decode/app"
)

// ProtoStat is the traffic of one application protocol (by the name flows
// show, e.g. "HTTPS", "DNS", "Unknown"), either of the flows whose payload
// showed it (Guess false) or of those that only a port suggests it for
// (Guess true): a protocol can have two ProtoStats, never mixed.
type ProtoStat struct {
	Name    string
	Guess   bool
	Flows   uint64
	Packets uint64
	Bytes   uint64
}

// protoTable sums ended flows per application protocol and guess. Updated
// when a flow record is written, never per packet.
type protoTable struct {
	idx  map[protoKey]int
	list []ProtoStat
	// last is the entry the latest add used, lastKey its key: a flood of
	// flows of one name skips the map.
	last    int
	lastKey protoKey
	// byID is 1 + the list index of each app.State.NameID and guess
	// (addState), 0 before their first flow: a shard's ended flows are
	// counted without building or comparing their protocol's name.
	byID [2 * app.NameIDs]int32
}

type protoKey struct {
	name  string
	guess bool
}

func (t *protoTable) add(name string, guess bool, flows, pkts, bytes uint64) {
	if t.idx == nil {
		t.idx = map[protoKey]int{}
	}
	k := protoKey{name, guess}
	i := t.last
	if len(t.list) == 0 || t.lastKey != k {
		var ok bool
		if i, ok = t.idx[k]; !ok {
			i = len(t.list)
			t.idx[k] = i
			t.list = append(t.list, ProtoStat{Name: name, Guess: guess})
		}
		t.last, t.lastKey = i, k
	}
	p := &t.list[i]
	p.Flows += flows
	p.Packets += pkts
	p.Bytes += bytes
}

// addState adds a flow of pkts packets and bytes bytes whose detection state
// is st: add(st.Name(), st.Guess, 1, pkts, bytes), its entry found by
// st.NameID.
func (t *protoTable) addState(st *app.State, pkts, bytes uint64) {
	k := st.NameID() << 1
	if st.Guess {
		k |= 1
	}
	i := int(t.byID[k]) - 1
	if i < 0 {
		t.add(st.Name(), st.Guess, 1, pkts, bytes)
		t.byID[k] = int32(t.last) + 1
		return
	}
	p := &t.list[i]
	p.Flows++
	p.Packets += pkts
	p.Bytes += bytes
}

// ProtocolSnapshot returns packets, bytes and flows per application protocol
// and guess (see ProtoStat), of ended and open flows, largest byte count
// first. A flow cut by the
// active timeout counts once per record.
//
// It walks every open flow (the sensor asks for it every second): a flow's
// name is read in place from its detection state, or from its ports when
// it has none, and summed in a small table matched by the name's string
// data (the names are a few dozen constant strings), not a map.
func (s *Shard) ProtocolSnapshot() []ProtoStat {
	var t protoTable
	for _, p := range s.protos.list {
		t.add(p.Name, p.Guess, p.Flows, p.Packets, p.Bytes)
	}
	var open openProtos
	for i := uint32(1); i < s.used; i++ {
		// The entries are read in slab order, the detection states they
		// name at random: start loading the state of the flow a few slots
		// ahead, so that the misses overlap.
		if j := i + snapshotAhead; j < s.used {
			if d := s.slot(j).det; d != 0 {
				prefetch(uintptr(unsafe.Pointer(s.app(d))))
			}
		}
		e := s.slot(i)
		if e.q == queueNone || e.pkts[0]+e.pkts[1] == 0 {
			continue
		}
		name, guess := s.appName(e)
		open.add(&t, name, guess, e.pkts[0]+e.pkts[1], e.bytes[0]+e.bytes[1])
	}
	for _, p := range open.list[:open.n] {
		t.add(p.Name, p.Guess, p.Flows, p.Packets, p.Bytes)
	}
	SortProtocols(t.list)
	return t.list
}

// snapshotAhead is how many slots ahead ProtocolSnapshot prefetches.
const snapshotAhead = 12

// appName is the name and guess flag of e's application protocol, as
// appOf's State shows them, without copying the State.
func (s *Shard) appName(e *entry) (string, bool) {
	if e.det != 0 {
		st := s.app(e.det)
		return st.Name(), st.Guess
	}
	k := &e.key
	if k.Proto != 6 && k.Proto != 17 {
		var st app.State
		return st.Name(), st.Guess
	}
	sp, dp := k.PortA, k.PortB
	if e.initB {
		sp, dp = dp, sp
	}
	return app.PortName(k.Proto, sp, dp)
}

// openProtos sums open flows per name and guess, names matched by their
// string data first; past its room it adds to the protoTable.
type openProtos struct {
	list [48]ProtoStat
	n    int
}

func (o *openProtos) add(t *protoTable, name string, guess bool, pkts, bytes uint64) {
	d := unsafe.StringData(name)
	for i := range o.list[:o.n] {
		p := &o.list[i]
		if p.Guess == guess && len(p.Name) == len(name) && (unsafe.StringData(p.Name) == d || p.Name == name) {
			p.Flows++
			p.Packets += pkts
			p.Bytes += bytes
			return
		}
	}
	if o.n == len(o.list) {
		t.add(name, guess, 1, pkts, bytes)
		return
	}
	o.list[o.n] = ProtoStat{Name: name, Guess: guess, Flows: 1, Packets: pkts, Bytes: bytes}
	o.n++
}

// MergeProtocols sums protocol statistics of several shards.
func MergeProtocols(parts ...[]ProtoStat) []ProtoStat {
	var t protoTable
	for _, part := range parts {
		for _, p := range part {
			t.add(p.Name, p.Guess, p.Flows, p.Packets, p.Bytes)
		}
	}
	SortProtocols(t.list)
	return t.list
}

// SortProtocols orders protocol statistics by bytes, largest first.
func SortProtocols(ps []ProtoStat) {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Bytes != ps[j].Bytes {
			return ps[i].Bytes > ps[j].Bytes
		}
		if ps[i].Name != ps[j].Name {
			return ps[i].Name < ps[j].Name
		}
		return !ps[i].Guess && ps[j].Guess
	})
}
