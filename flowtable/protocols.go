package flowtable

import (
	"sort"

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
// first. A flow cut by the active timeout counts once per record.
//
// Open flows are counted as they go, in the shard's open-protocol table
// (one row per protocol key, openKey): a packet adds to its flow's row, a
// flow whose payload names another protocol moves its counts to that row,
// and a flow that ends (or is cut) takes them out. So the snapshot (the
// sensor asks for it every second) costs the table, not a walk over every
// open flow and its detection state.
func (s *Shard) ProtocolSnapshot() []ProtoStat {
	var t protoTable
	for _, p := range s.protos.list {
		t.add(p.Name, p.Guess, p.Flows, p.Packets, p.Bytes)
	}
	for k := range s.open {
		if o := &s.open[k]; o.flows > 0 {
			t.add(app.NameOfID(k>>1), k&1 != 0, o.flows, o.pkts, o.bytes)
		}
	}
	SortProtocols(t.list)
	return t.list
}

// The open-protocol table: a row per protocol key, the counts of the open
// flows (with a packet in their current record) that show that protocol.
const (
	openKeys = 2 * app.NameIDs // app.State.NameID << 1 | guess
	apDone   = 0x80            // entry.ap: detection is done
	apKey    = 0x7f            // entry.ap: the open-protocol key
)

// The keys fit beside apDone.
var _ [apKey + 1 - openKeys]struct{}

type openStat struct{ flows, pkts, bytes uint64 }

// appDone reports that e's detection state needs no more packets.
func (e *entry) appDone() bool { return e.ap&apDone != 0 }

// stateKey is the open-protocol key of a flow with detection state st.
func stateKey(st *app.State) uint8 {
	k := uint8(st.NameID()) << 1
	if st.Guess {
		k |= 1
	}
	return k
}

// portKey is the open-protocol key of e from its ports alone (a flow
// without detection state), as appOf's port guess shows it.
func (s *Shard) portKey(e *entry) uint8 {
	k := &e.key
	if k.Proto != 6 && k.Proto != 17 {
		return 0 // a zero State: Unknown, no guess
	}
	sp, dp := k.PortA, k.PortB
	if e.initB {
		sp, dp = dp, sp
	}
	id, guess := app.PortNameID(k.Proto, sp, dp)
	key := uint8(id) << 1
	if guess {
		key |= 1
	}
	return key
}

// curKey is e's open-protocol key now: its detection state's, else its
// ports'.
func (s *Shard) curKey(e *entry) uint8 {
	if e.det != 0 {
		return stateKey(s.app(e.det))
	}
	return s.portKey(e)
}

// moveOpen moves e's counts to the row of key k and makes k its key.
func (s *Shard) moveOpen(e *entry, k uint8) {
	if n := e.pkts[0] + e.pkts[1]; n > 0 {
		b := e.bytes[0] + e.bytes[1]
		from, to := &s.open[e.ap&apKey], &s.open[k]
		from.flows--
		from.pkts -= n
		from.bytes -= b
		to.flows++
		to.pkts += n
		to.bytes += b
	}
	e.ap = e.ap&apDone | k
}

// closeOpen takes e's counts out of the open-protocol table (its record
// was written: the flow ends, or is cut and starts a new record).
func (s *Shard) closeOpen(e *entry) {
	if n := e.pkts[0] + e.pkts[1]; n > 0 {
		o := &s.open[e.ap&apKey]
		o.flows--
		o.pkts -= n
		o.bytes -= e.bytes[0] + e.bytes[1]
	}
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
