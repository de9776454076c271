// The open block's encoder (blockEnc): a record is coded once, when it
// arrives, into the streams of its block (see encodeBlock's format in
// flows.go), and what its summary needs is kept beside it (sumRec). A put
// then only cuts values out of these streams and compresses them: a base is
// the streams whole, a segment the part since the last put with its first
// record's two context-dependent fields (time, app result) coded again as
// a value's first record. Neither re-reads nor copies a flowtable.Record
// (576 bytes each); before, every record was copied into its open block
// and coded again at every put that rewrote its base.

package store

import (
	"encoding/binary"
	"math"
	"math/bits"
	"slices"

	"github.com/klauspost/compress/s2"

	"github.com/netsentry/netsentry/flowtable"
)

// streamMax is the most bytes one record adds to each stream: flags (9
// bytes and two uint16 uvarints), addresses, ports, six uvarint
// counters, two varint times, the app result coded whole (code, length,
// the result: at most 427 bytes in decode/app's binary format, 512
// allowed) and the app label (length, at most maxAppLabel bytes). An
// open block's streams are grown to at most BlockRecords times these
// (room), which bounds the FlowLog's memory (FlowMemoryBytes); their sum
// is within maxRecordBytes.
var streamMax = [numStreams]int{
	stFlags: 9 + 2*3,
	stAddr:  2 * 16,
	stPorts: 4,
	stCount: 6 * binary.MaxVarintLen64,
	stTime:  2 * binary.MaxVarintLen64,
	stApp:   1 + 2 + 512,
	stLabel: 2 + maxAppLabel,
}

// streamMaxSum is the sum of streamMax.
const streamMaxSum = 9 + 2*3 + 2*16 + 4 + 6*binary.MaxVarintLen64 + 2*binary.MaxVarintLen64 + 1 + 2 + 512 + 2 + maxAppLabel

// smallPorts is the most records whose summary sorts their ports as a
// list rather than scanning a bit set of every port.
const smallPorts = 128

// sumRec is what a block summary needs of a record (16 bytes).
type sumRec struct {
	last         int64
	sport, dport uint16
	app          uint16 // index in blockEnc.apps
	proto        uint8
	fl           uint8 // sumV4: IPVersion 4; sumShort: 4-byte addresses in the stream
}

const (
	sumV4    = 1
	sumShort = 2
)

// blockEnc is an open block's encoding: its records coded one after the
// other into the version 2 streams, and their summary fields.
type blockEnc struct {
	st       [numStreams][]byte
	prevLast int64
	prevApp  []byte // the last record's app result
	curApp   []byte
	recs     []sumRec
	apps     []string // distinct application names of the block
	lastApp  int      // index in apps of the last record's name
	// appByID is 1 + the index in apps of each Record.AppNameID's name
	// (records without AppLabel), 0 before the block's first
	appByID [flowtable.AppNameIDs]int32
	// The first record since the last put: each stream's length before it
	// (mark) and after it (after), and its time and app result coded as a
	// value's first record (freshTime, freshApp).
	mark, after         [numStreams]int
	freshTime, freshApp []byte
}

// reset empties e for a new block, keeping its buffers.
func (e *blockEnc) reset() {
	for i := range e.st {
		e.st[i] = e.st[i][:0]
	}
	clear(e.apps) // no label strings kept alive
	clear(e.appByID[:])
	e.prevLast, e.prevApp, e.recs, e.apps, e.lastApp = 0, e.prevApp[:0], e.recs[:0], e.apps[:0], 0
}

// room returns b with room for need more bytes, grown to at most limit
// (unless need itself does not fit below it).
func room(b []byte, need, limit int) []byte {
	if cap(b)-len(b) >= need {
		return b
	}
	c := max(2*cap(b), 512)
	if c > limit {
		c = limit
	}
	c = max(c, len(b)+need)
	nb := make([]byte, len(b), c)
	copy(nb, b)
	return nb
}

// add codes r after the block's records; first says that r is the first
// record since the last put. blockRecords bounds the streams' growth.
func (e *blockEnc) add(r *flowtable.Record, first bool, blockRecords int) {
	st := &e.st
	cur := r.App.AppendResult(e.curApp[:0])
	label := r.AppLabel[:min(len(r.AppLabel), maxAppLabel)]
	for i := range st {
		need := streamMax[i]
		switch i {
		case stApp:
			need = 3 + 2*len(cur) // a diff is cut back to whole once longer
		case stLabel:
			need = 2 + len(label)
		}
		if cap(st[i])-len(st[i]) < need {
			st[i] = room(st[i], need, blockRecords*streamMax[i])
		}
	}
	if first {
		for i := range st {
			e.mark[i] = len(st[i])
		}
	}
	var fl, sfl byte
	short := r.IPVersion == 4 && allZero(r.Src[4:]) && allZero(r.Dst[4:])
	if short {
		fl |= 1
		sfl |= sumShort
	}
	if r.IPVersion == 4 {
		sfl |= sumV4
	}
	if r.AppLabelGuess {
		fl |= 2
	}
	b := append(st[stFlags], fl, r.IPVersion, r.Proto, byte(r.Tunnel), byte(r.State), byte(r.ConnState), byte(r.End), r.FlagsTx, r.FlagsRx)
	b = binary.AppendUvarint(b, uint64(r.VLAN))
	st[stFlags] = binary.AppendUvarint(b, uint64(r.InnerVLAN))
	if short {
		st[stAddr] = append(append(st[stAddr], r.Src[:4]...), r.Dst[:4]...)
	} else {
		st[stAddr] = append(append(st[stAddr], r.Src[:]...), r.Dst[:]...)
	}
	st[stPorts] = binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(st[stPorts], r.SrcPort), r.DstPort)
	b = binary.AppendUvarint(st[stCount], r.PacketsTx)
	b = binary.AppendUvarint(b, r.PacketsRx)
	b = binary.AppendUvarint(b, r.BytesTx)
	b = binary.AppendUvarint(b, r.BytesRx)
	b = binary.AppendUvarint(b, r.IPBytesTx)
	st[stCount] = binary.AppendUvarint(b, r.IPBytesRx)
	st[stTime] = binary.AppendVarint(binary.AppendVarint(st[stTime], r.Last-e.prevLast), r.Last-r.First)
	st[stApp] = appendAppDiff(st[stApp], e.prevApp, cur)
	st[stLabel] = append(binary.AppendUvarint(st[stLabel], uint64(len(label))), label...)
	if first {
		e.after[stTime], e.after[stApp] = len(st[stTime]), len(st[stApp])
		e.freshTime = binary.AppendVarint(binary.AppendVarint(e.freshTime[:0], r.Last), r.Last-r.First)
		e.freshApp = appendAppDiff(e.freshApp[:0], nil, cur)
	}
	e.prevLast = r.Last
	e.prevApp, e.curApp = cur, e.prevApp

	if id, ok := r.AppNameID(); !ok {
		e.appIndex(r.AppName())
	} else if e.appByID[id] != 0 {
		// r.AppName(), its index found without building it
		e.lastApp = int(e.appByID[id]) - 1
	} else {
		e.appIndex(r.AppName())
		e.appByID[id] = int32(e.lastApp) + 1
	}
	e.recs = append(e.recs, sumRec{last: r.Last, sport: r.SrcPort, dport: r.DstPort, app: uint16(e.lastApp), proto: r.Proto, fl: sfl})
}

// appIndex makes e.lastApp the index of application name a in e.apps,
// adding it if it is new.
func (e *blockEnc) appIndex(a string) {
	if len(e.apps) == 0 || e.apps[e.lastApp] != a {
		if k := slices.Index(e.apps, a); k >= 0 {
			e.lastApp = k
		} else {
			e.lastApp = len(e.apps)
			e.apps = append(e.apps, a)
		}
	}
}

// value returns the block value of the records from index from on (0: a
// base holding every record; otherwise the records since the last put, as
// a segment), in f's scratch space, valid until the next call.
func (f *FlowLog) value(e *blockEnc, from int) []byte {
	n := len(e.recs) - from
	codec := blockCodec
	v := append(f.sc.val[:0], blockV2, codec)
	v = binary.AppendUvarint(v, uint64(n))
	v = binary.AppendUvarint(v, uint64(from))
	var parts [numStreams][2][]byte
	for i := range parts {
		if from == 0 {
			parts[i][1] = e.st[i]
			continue
		}
		switch i {
		case stTime:
			parts[i] = [2][]byte{e.freshTime, e.st[i][e.after[i]:]}
		case stApp:
			parts[i] = [2][]byte{e.freshApp, e.st[i][e.after[i]:]}
		default:
			parts[i][1] = e.st[i][e.mark[i]:]
		}
	}
	raw := f.sc.raw[:0]
	for i := range parts {
		raw = binary.AppendUvarint(raw, uint64(len(parts[i][0])+len(parts[i][1])))
	}
	for i := range parts {
		raw = append(append(raw, parts[i][0]...), parts[i][1]...)
	}
	switch codec {
	case codecS2:
		k := len(v)
		v = slices.Grow(v, s2.MaxEncodedLen(len(raw)))
		v = v[:k+len(s2.Encode(v[k:cap(v)], raw))]
	default:
		v = flowEnc().EncodeAll(raw, v)
	}
	f.sc.raw, f.sc.val = raw, v
	return v
}

// recRange returns the least and the greatest last_seen of recs.
func recRange(recs []sumRec) (lo, hi int64) {
	lo, hi = math.MaxInt64, math.MinInt64
	for i := range recs {
		lo, hi = min(lo, recs[i].last), max(hi, recs[i].last)
	}
	return lo, hi
}

// summarize encodes what Query needs to skip the block (from 0) or the
// segment (from the first record since the last put) of e (summary
// version 2: the sorted distinct ports and IPv4 addresses as deltas). The
// result is in f's scratch space, valid until the next call (pebble's
// Batch.Set copies it).
func (f *FlowLog) summarize(seq uint64, e *blockEnc, from int) []byte {
	recs := e.recs[from:]
	addr := e.st[stAddr]
	if from > 0 {
		addr = addr[e.mark[stAddr]:]
	}
	var protos [32]byte
	apps := f.sc.appIdx[:0]
	ip4 := f.sc.ip4[:0]
	ip16 := f.sc.ip16[:0]
	pm := &f.sc.portSet
	lastApp := -1
	var lastSrc, lastDst uint32
	// the ports of a short segment sorted as a list; a block's in a bit
	// per port, whose 1,024 words cost little against 512 records
	bitmap := len(recs) > smallPorts
	ports := f.sc.ports[:0]
	for i := range recs {
		r := &recs[i]
		protos[r.proto>>3] |= 1 << (r.proto & 7)
		if a := r.app; int(a) != lastApp {
			if !slices.Contains(apps, a) {
				apps = append(apps, a)
			}
			lastApp = int(a)
		}
		if bitmap {
			pm[r.sport>>6] |= 1 << (r.sport & 63)
			pm[r.dport>>6] |= 1 << (r.dport & 63)
		} else {
			ports = append(ports, r.sport, r.dport)
		}
		al := 16
		if r.fl&sumShort != 0 {
			al = 4
		}
		if len(addr) < 2*al {
			panic("BUG: flow block address stream shorter than its records")
		}
		if r.fl&sumV4 != 0 {
			// consecutive repeats (a busy server) sorted once
			if a := binary.BigEndian.Uint32(addr); i == 0 || a != lastSrc {
				ip4, lastSrc = append(ip4, a), a
			}
			if a := binary.BigEndian.Uint32(addr[al:]); i == 0 || a != lastDst {
				ip4, lastDst = append(ip4, a), a
			}
		} else {
			var s, d decode16
			copy(s[:], addr[:al])
			copy(d[:], addr[al:2*al])
			ip16 = append(ip16, s, d)
		}
		addr = addr[2*al:]
	}
	minLast, maxLast := recRange(recs)
	s := append(f.sc.sum[:0], summaryV2)
	s = binary.AppendUvarint(s, seq)
	s = binary.AppendUvarint(s, uint64(len(recs)))
	s = binary.AppendVarint(s, minLast)
	s = binary.AppendVarint(s, maxLast)
	s = append(s, protos[:]...)
	s = binary.AppendUvarint(s, uint64(len(apps)))
	for _, k := range apps {
		a := e.apps[k]
		s = binary.AppendUvarint(s, uint64(len(a)))
		s = append(s, a...)
	}
	d := f.sc.deltas[:0]
	var prev uint64
	if bitmap {
		for w := range pm {
			for x := pm[w]; x != 0; x &= x - 1 {
				p := uint64(w)<<6 | uint64(bits.TrailingZeros64(x))
				d = binary.AppendUvarint(d, p-prev)
				prev = p
			}
			pm[w] = 0
		}
	} else {
		slices.Sort(ports)
		for i, p := range ports {
			if i == 0 || p != ports[i-1] {
				d = binary.AppendUvarint(d, uint64(p)-prev)
				prev = uint64(p)
			}
		}
		f.sc.ports = ports[:0]
	}
	s = append(binary.AppendUvarint(s, uint64(len(d))), d...)
	f.sc.tmp4 = slices.Grow(f.sc.tmp4[:0], len(ip4))[:len(ip4)]
	radixSort32(ip4, f.sc.tmp4)
	ip4 = slices.Compact(ip4)
	d, prev = d[:0], 0
	for _, a := range ip4 {
		d = binary.AppendUvarint(d, uint64(a)-prev)
		prev = uint64(a)
	}
	s = append(binary.AppendUvarint(s, uint64(len(d))), d...)
	if len(ip16) > 1 {
		slices.SortFunc(ip16, func(a, b decode16) int {
			if c := cmpBE(a[:8], b[:8]); c != 0 {
				return c
			}
			return cmpBE(a[8:], b[8:])
		})
	}
	ip16 = slices.Compact(ip16)
	s = binary.AppendUvarint(s, uint64(len(ip16)))
	for i := range ip16 {
		s = append(s, ip16[i][:]...)
	}
	f.sc.appIdx, f.sc.ip4, f.sc.ip16, f.sc.sum, f.sc.deltas = apps[:0], ip4, ip16, s, d
	return s
}

func cmpBE(a, b []byte) int {
	x, y := binary.BigEndian.Uint64(a), binary.BigEndian.Uint64(b)
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// radixSort32 sorts a in place (least significant byte first, a byte a
// pass, skipping a byte that every element shares), with tmp (len(a)) as
// scratch: the addresses of a flood share their /16 prefix, so two passes
// of a few thousand operations replace a comparison sort of about 55 ns
// an address.
func radixSort32(a, tmp []uint32) {
	if len(a) < 64 {
		slices.Sort(a)
		return
	}
	src, dst := a, tmp
	for shift := uint(0); shift < 32; shift += 8 {
		var cnt [256]int
		for _, x := range src {
			cnt[byte(x>>shift)]++
		}
		if cnt[byte(src[0]>>shift)] == len(src) {
			continue
		}
		pos := 0
		for i := range cnt {
			c := cnt[i]
			cnt[i] = pos
			pos += c
		}
		for _, x := range src {
			k := byte(x >> shift)
			dst[cnt[k]] = x
			cnt[k]++
		}
		src, dst = dst, src
	}
	if &src[0] != &a[0] {
		copy(a, src)
	}
}
