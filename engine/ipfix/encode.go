package ipfix

import (
	"encoding/binary"

	"github.com/netsentry/netsentry/flowtable"
)

// Protocol constants.
const (
	Version          = 10    // IPFIX message version number
	TemplateSetID    = 2     // set ID of a template set
	OptionsSetID     = 3     // set ID of an options template set
	MinDataSetID     = 256   // lowest set ID (template ID) of a data set
	ReversePEN       = 29305 // RFC 5103: the reverse direction of an element
	ServerNamePEN    = 32473 // RFC 5612 documentation enterprise number (see the package doc)
	ServerNameID     = 1     // serverName under ServerNamePEN
	TemplateIPv4     = 256
	TemplateIPv6     = 257
	HeaderLen        = 16
	SetHeaderLen     = 4
	VarLen           = 0xffff // field length of a variable-length element
	MaxUDPMessage    = 1400   // bytes: an IPv4 or IPv6 + UDP datagram within a 1500-byte MTU
	MaxTCPMessage    = 16384  // bytes
	maxNameLen       = 253    // longest string written (a DNS name's limit)
	endReasonIdle    = 1
	endReasonActive  = 2
	endReasonEnd     = 3
	endReasonForced  = 4
	endReasonLackRes = 5
)

// Field is one element of a template: its ID, enterprise number (0: IANA)
// and length (VarLen: variable).
type Field struct {
	ID     uint16
	PEN    uint32
	Length uint16
}

// IANA information element IDs used here.
const (
	ieOctetDeltaCount        = 1
	iePacketDeltaCount       = 2
	ieProtocolIdentifier     = 4
	ieTCPControlBits         = 6
	ieSourceTransportPort    = 7
	ieSourceIPv4Address      = 8
	ieDestinationTransport   = 11
	ieDestinationIPv4Address = 12
	ieSourceIPv6Address      = 27
	ieDestinationIPv6Address = 28
	ieVlanID                 = 58
	ieApplicationName        = 96
	ieFlowEndReason          = 136
	ieFlowStartMilliseconds  = 152
	ieFlowEndMilliseconds    = 153
	ieBiflowDirection        = 239
	ieLayer2OctetDeltaCount  = 352
)

// Template returns the fields of template id (TemplateIPv4 or TemplateIPv6).
func Template(id uint16) []Field {
	src, dst, alen := uint16(ieSourceIPv4Address), uint16(ieDestinationIPv4Address), uint16(4)
	if id == TemplateIPv6 {
		src, dst, alen = ieSourceIPv6Address, ieDestinationIPv6Address, 16
	}
	return []Field{
		{ID: src, Length: alen},
		{ID: dst, Length: alen},
		{ID: ieSourceTransportPort, Length: 2},
		{ID: ieDestinationTransport, Length: 2},
		{ID: ieProtocolIdentifier, Length: 1},
		{ID: ieVlanID, Length: 2},
		{ID: ieBiflowDirection, Length: 1},
		{ID: ieFlowStartMilliseconds, Length: 8},
		{ID: ieFlowEndMilliseconds, Length: 8},
		{ID: ieFlowEndReason, Length: 1},
		{ID: iePacketDeltaCount, Length: 8},
		{ID: iePacketDeltaCount, PEN: ReversePEN, Length: 8},
		{ID: ieOctetDeltaCount, Length: 8},
		{ID: ieOctetDeltaCount, PEN: ReversePEN, Length: 8},
		{ID: ieLayer2OctetDeltaCount, Length: 8},
		{ID: ieLayer2OctetDeltaCount, PEN: ReversePEN, Length: 8},
		{ID: ieTCPControlBits, Length: 2},
		{ID: ieTCPControlBits, PEN: ReversePEN, Length: 2},
		{ID: ieApplicationName, Length: VarLen},
		{ID: ServerNameID, PEN: ServerNamePEN, Length: VarLen},
	}
}

// fixedLen is the bytes of a data record of template id before its
// variable-length fields.
func fixedLen(id uint16) int {
	if id == TemplateIPv6 {
		return 16 + 16 + 2 + 2 + 1 + 2 + 1 + 8 + 8 + 1 + 8*6 + 2 + 2
	}
	return 4 + 4 + 2 + 2 + 1 + 2 + 1 + 8 + 8 + 1 + 8*6 + 2 + 2
}

// EndReason maps a flow record's end reason to flowEndReason (RFC 7270
// values): idle timeout 1, active timeout 2, end of flow (FIN, RST) 3,
// forced end (end of capture, shutdown) 4, lack of resources (eviction) 5.
func EndReason(r flowtable.EndReason) uint8 {
	switch r {
	case flowtable.EndIdle:
		return endReasonIdle
	case flowtable.EndActive:
		return endReasonActive
	case flowtable.EndFin, flowtable.EndRst:
		return endReasonEnd
	case flowtable.EndEviction:
		return endReasonLackRes
	}
	return endReasonForced
}

// encoder builds IPFIX messages into buf, one message at a time.
type encoder struct {
	odid  uint32
	seq   uint32 // data records sent before the current message
	max   int    // largest message, bytes
	buf   []byte
	set   int    // offset of the open set's header, -1 when none
	setID uint16 // the open set's ID
	recs  uint32 // data records in the current message
}

func newEncoder(odid uint32, maxLen int) *encoder {
	return &encoder{odid: odid, max: maxLen, buf: make([]byte, 0, maxLen), set: -1}
}

// begin starts a new message exported at exportTime (Unix seconds).
func (e *encoder) begin(exportTime uint32) {
	e.buf = e.buf[:HeaderLen]
	binary.BigEndian.PutUint16(e.buf[0:], Version)
	binary.BigEndian.PutUint32(e.buf[4:], exportTime)
	binary.BigEndian.PutUint32(e.buf[8:], e.seq)
	binary.BigEndian.PutUint32(e.buf[12:], e.odid)
	e.set, e.recs = -1, 0
}

// empty reports that the current message holds no set.
func (e *encoder) empty() bool { return len(e.buf) <= HeaderLen }

func (e *encoder) closeSet() {
	if e.set >= 0 {
		binary.BigEndian.PutUint16(e.buf[e.set+2:], uint16(len(e.buf)-e.set))
		e.set = -1
	}
}

func (e *encoder) openSet(id uint16) {
	if e.set >= 0 && e.setID == id {
		return
	}
	e.closeSet()
	e.set, e.setID = len(e.buf), id
	e.buf = append(e.buf, byte(id>>8), byte(id), 0, 0)
}

// templates appends the template set of both templates.
func (e *encoder) templates() {
	e.openSet(TemplateSetID)
	for _, id := range []uint16{TemplateIPv4, TemplateIPv6} {
		fs := Template(id)
		e.buf = binary.BigEndian.AppendUint16(e.buf, id)
		e.buf = binary.BigEndian.AppendUint16(e.buf, uint16(len(fs)))
		for _, f := range fs {
			if f.PEN != 0 {
				e.buf = binary.BigEndian.AppendUint16(e.buf, f.ID|0x8000)
				e.buf = binary.BigEndian.AppendUint16(e.buf, f.Length)
				e.buf = binary.BigEndian.AppendUint32(e.buf, f.PEN)
				continue
			}
			e.buf = binary.BigEndian.AppendUint16(e.buf, f.ID)
			e.buf = binary.BigEndian.AppendUint16(e.buf, f.Length)
		}
	}
	e.closeSet()
}

// templatesLen is the size of the template set.
func templatesLen() int {
	n := SetHeaderLen
	for _, id := range []uint16{TemplateIPv4, TemplateIPv6} {
		n += 4
		for _, f := range Template(id) {
			n += 4
			if f.PEN != 0 {
				n += 4
			}
		}
	}
	return n
}

// recordLen is the encoded size of r's data record, and its template.
func recordLen(r *flowtable.Record, app, name []byte) (int, uint16) {
	id := uint16(TemplateIPv4)
	if r.IPVersion == 6 {
		id = TemplateIPv6
	}
	return fixedLen(id) + varLen(len(app)) + varLen(len(name)), id
}

func varLen(n int) int {
	if n < 255 {
		return 1 + n
	}
	return 3 + n
}

// fits reports whether a record of n bytes in set id fits the message.
func (e *encoder) fits(n int, id uint16) bool {
	if e.set < 0 || e.setID != id {
		n += SetHeaderLen
	}
	return len(e.buf)+n <= e.max
}

// record appends r's data record (in its template's set).
func (e *encoder) record(r *flowtable.Record, id uint16, app, name []byte) {
	e.openSet(id)
	b := e.buf
	if id == TemplateIPv6 {
		b = append(b, r.Src[:]...)
		b = append(b, r.Dst[:]...)
	} else {
		b = append(b, r.Src[:4]...)
		b = append(b, r.Dst[:4]...)
	}
	sp, dp := r.SrcPort, r.DstPort
	switch r.Proto {
	case 6, 17, 132, 136, 33:
	default:
		sp, dp = 0, 0
	}
	b = binary.BigEndian.AppendUint16(b, sp)
	b = binary.BigEndian.AppendUint16(b, dp)
	b = append(b, r.Proto)
	b = binary.BigEndian.AppendUint16(b, r.VLAN&0x0fff)
	b = append(b, 1) // biflowDirection: initiator
	b = binary.BigEndian.AppendUint64(b, uint64(r.First/1e6))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Last/1e6))
	b = append(b, EndReason(r.End))
	b = binary.BigEndian.AppendUint64(b, r.PacketsTx)
	b = binary.BigEndian.AppendUint64(b, r.PacketsRx)
	b = binary.BigEndian.AppendUint64(b, r.IPBytesTx)
	b = binary.BigEndian.AppendUint64(b, r.IPBytesRx)
	b = binary.BigEndian.AppendUint64(b, r.BytesTx)
	b = binary.BigEndian.AppendUint64(b, r.BytesRx)
	var ftx, frx uint8
	if r.Proto == 6 {
		ftx, frx = r.FlagsTx, r.FlagsRx
	}
	b = binary.BigEndian.AppendUint16(b, uint16(ftx))
	b = binary.BigEndian.AppendUint16(b, uint16(frx))
	b = appendVar(b, app)
	b = appendVar(b, name)
	e.buf = b
	e.recs++
}

func appendVar(b, s []byte) []byte {
	if len(s) < 255 {
		b = append(b, byte(len(s)))
	} else {
		b = append(b, 255, byte(len(s)>>8), byte(len(s)))
	}
	return append(b, s...)
}

// finish closes the message and returns it; the sequence number moves on
// by its data records. The slice is valid until the next begin.
func (e *encoder) finish() []byte {
	e.closeSet()
	binary.BigEndian.PutUint16(e.buf[2:], uint16(len(e.buf)))
	e.seq += e.recs
	return e.buf
}

// clip bounds a string element to maxNameLen bytes.
func clip(s []byte) []byte {
	if len(s) > maxNameLen {
		return s[:maxNameLen]
	}
	return s
}
