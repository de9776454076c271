package flowtable

import (
	"unsafe"

	"github.com/netsentry/netsentry/decode/app"
)

// protocolSnapshotWalk is ProtocolSnapshot as it was before the open-protocol
// table: a walk over every open flow, its name read from its detection state
// or its ports. The tests hold the table to it.
func (s *Shard) protocolSnapshotWalk() []ProtoStat {
	var t protoTable
	for _, p := range s.protos.list {
		t.add(p.Name, p.Guess, p.Flows, p.Packets, p.Bytes)
	}
	var open openProtos
	for i := uint32(1); i < s.used; i++ {
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
