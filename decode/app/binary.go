package app

import (
	"encoding/binary"
	"errors"
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
	g := byte(0)
	if s.Guess {
		g = 1
	}
	b = append(b, 1, byte(s.Proto), g, s.l4, s.cli, s.pkts[0], s.pkts[1])
	b = binary.LittleEndian.AppendUint16(b, s.ports[0])
	b = binary.LittleEndian.AppendUint16(b, s.ports[1])
	b = binary.LittleEndian.AppendUint32(b, s.flags)
	b = binary.LittleEndian.AppendUint16(b, s.status)
	b = binary.LittleEndian.AppendUint16(b, s.qtype)
	b = binary.LittleEndian.AppendUint16(b, s.answers)
	b = append(b, s.rcode, s.names)
	b = binary.LittleEndian.AppendUint16(b, s.nameOff)
	b = binary.LittleEndian.AppendUint32(b, s.queries)
	b = binary.LittleEndian.AppendUint32(b, s.replies)
	b = append(b, s.msgType, s.msgVer)
	b = binary.LittleEndian.AppendUint16(b, s.tlsRec)
	b = binary.LittleEndian.AppendUint16(b, s.tlsCli)
	b = binary.LittleEndian.AppendUint16(b, s.tlsMax)
	b = binary.LittleEndian.AppendUint16(b, s.tlsSrv)
	b = binary.LittleEndian.AppendUint32(b, s.quicVer)
	b = append(b, s.ja3[:]...)
	for _, o := range s.soff {
		b = binary.LittleEndian.AppendUint16(b, o)
	}
	b = append(b, s.slen[:]...)
	b = binary.LittleEndian.AppendUint16(b, s.used)
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
