package app

import (
	"encoding/binary"
	"errors"
	"slices"
)

// errBadResult is returned by DecodeResult for bytes that AppendResult did
// not write.
var errBadResult = errors.New("decode app result: malformed")

// resultLen is the length of AppendResult's fixed part after its first byte.
const resultLen = 6 + 2*2 + 4 + 3*2 + 2 + 2 + 2*4 + 2 + 4*2 + 4 + 16 + 2*int(numFields) + int(numFields) + 2

// AppendResult appends the detection result of s: everything that AppendJSON,
// Name, ServerPort and the exported fields read, and nothing of the
// reassembly in progress (a stored result has no Pool). The zero State is one
// byte. DecodeResult reads it back; the format is versioned by its first byte.
func (s *State) AppendResult(b []byte) []byte {
	if *s == (State{}) {
		return append(b, 0)
	}
	// The fixed part written in place at its offsets (grown once), not
	// appended a field at a time: the flow history codes one result per
	// ended flow.
	n := len(b)
	b = slices.Grow(b, 1+resultLen+int(s.used))[:n+1+resultLen]
	r := (*[1 + resultLen]byte)(b[n:])
	le := binary.LittleEndian
	g := byte(0)
	if s.Guess {
		g = 1
	}
	r[0], r[1], r[2], r[3], r[4], r[5], r[6] = 1, byte(s.Proto), g, s.l4, s.cli, s.pkts[0], s.pkts[1]
	le.PutUint16(r[7:], s.ports[0])
	le.PutUint16(r[9:], s.ports[1])
	le.PutUint32(r[11:], s.flags)
	le.PutUint16(r[15:], s.status)
	le.PutUint16(r[17:], s.qtype)
	le.PutUint16(r[19:], s.answers)
	r[21], r[22] = s.rcode, s.names
	le.PutUint16(r[23:], s.nameOff)
	le.PutUint32(r[25:], s.queries)
	le.PutUint32(r[29:], s.replies)
	r[33], r[34] = s.msgType, s.msgVer
	le.PutUint16(r[35:], s.tlsRec)
	le.PutUint16(r[37:], s.tlsCli)
	le.PutUint16(r[39:], s.tlsMax)
	le.PutUint16(r[41:], s.tlsSrv)
	le.PutUint32(r[43:], s.quicVer)
	copy(r[47:63], s.ja3[:])
	for i, o := range s.soff {
		le.PutUint16(r[63+2*i:], o)
	}
	copy(r[63+2*int(numFields):63+3*int(numFields)], s.slen[:])
	le.PutUint16(r[63+3*int(numFields):], s.used)
	return append(b, s.arena[:s.used]...)
}

// DecodeResult sets s to the result at the front of b, as AppendResult wrote
// it, and returns the rest of b. Bytes that AppendResult cannot have written
// (truncated, strings outside the arena, a broken name list) are an error and
// leave s zero; DecodeResult never panics on them.
func (s *State) DecodeResult(b []byte) ([]byte, error) {
	*s = State{}
	if len(b) == 0 {
		return b, errBadResult
	}
	if b[0] == 0 {
		return b[1:], nil
	}
	if b[0] != 1 || len(b) < 1+resultLen {
		return b, errBadResult
	}
	p := b[1:]
	u16 := func() uint16 { v := binary.LittleEndian.Uint16(p); p = p[2:]; return v }
	u32 := func() uint32 { v := binary.LittleEndian.Uint32(p); p = p[4:]; return v }
	s.Proto, s.Guess, s.l4, s.cli, s.pkts[0], s.pkts[1] = Proto(p[0]), p[1] == 1, p[2], p[3], p[4], p[5]
	if p[1] > 1 {
		return b, s.bad()
	}
	p = p[6:]
	s.ports[0], s.ports[1] = u16(), u16()
	s.flags = u32()
	s.status, s.qtype, s.answers = u16(), u16(), u16()
	s.rcode, s.names = p[0], p[1]
	p = p[2:]
	s.nameOff = u16()
	s.queries, s.replies = u32(), u32()
	s.msgType, s.msgVer = p[0], p[1]
	p = p[2:]
	s.tlsRec, s.tlsCli, s.tlsMax, s.tlsSrv = u16(), u16(), u16(), u16()
	s.quicVer = u32()
	p = p[copy(s.ja3[:], p):]
	for i := range s.soff {
		s.soff[i] = u16()
	}
	p = p[copy(s.slen[:], p):]
	s.used = u16()
	if int(s.used) > arenaSize || len(p) < int(s.used) || s.cli > 1 {
		return b, s.bad()
	}
	p = p[copy(s.arena[:], p[:s.used]):]
	if !s.valid() {
		return b, s.bad()
	}
	return p, nil
}

func (s *State) bad() error {
	*s = State{}
	return errBadResult
}

// valid reports that every string of s lies in its arena and that the name
// list walks inside it, so that get and nameIter cannot go out of range.
func (s *State) valid() bool {
	for f := range s.soff {
		if s.slen[f] == 0 {
			if int(s.soff[f]) > arenaSize {
				return false
			}
		} else if int(s.soff[f])+int(s.slen[f]) > int(s.used) {
			return false
		}
	}
	if s.names == 0 {
		return true
	}
	off, n := int(s.nameOff), int(s.slen[s.nameField()])
	for range int(s.names) {
		if off+2 > int(s.used) {
			return false
		}
		p, shared := int(s.arena[off]), int(s.arena[off+1])
		if off+2+p > int(s.used) || shared > n {
			return false
		}
		n = min(p+shared, 256)
		off += 2 + p
	}
	return true
}
