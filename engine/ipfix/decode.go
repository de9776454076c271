package ipfix

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Header is an IPFIX message header.
type Header struct {
	Version, Length uint16
	ExportTime      uint32
	Seq             uint32
	ODID            uint32
}

// Value is one field of a decoded data record.
type Value struct {
	Field
	Data []byte // the field's bytes (a copy)
}

// Record is one decoded data record.
type Record struct {
	ODID     uint32
	Template uint16
	Values   []Value
}

// Get returns the value of element id of enterprise pen, and whether the
// record has it.
func (r *Record) Get(pen uint32, id uint16) ([]byte, bool) {
	for _, v := range r.Values {
		if v.ID == id && v.PEN == pen {
			return v.Data, true
		}
	}
	return nil, false
}

// Uint returns the element as an unsigned number (reduced-size encodings
// included), and whether the record has it.
func (r *Record) Uint(pen uint32, id uint16) (uint64, bool) {
	d, ok := r.Get(pen, id)
	if !ok || len(d) > 8 {
		return 0, false
	}
	var n uint64
	for _, c := range d {
		n = n<<8 | uint64(c)
	}
	return n, true
}

// Message is one decoded IPFIX message.
type Message struct {
	Header    Header
	Templates []uint16 // template IDs the message (re)defined
	Records   []Record // data records whose template was known
	Unknown   int      // data sets skipped because their template was not known
}

// ErrShort: the bytes end before the message does.
var ErrShort = errors.New("ipfix: short message")

type tkey struct {
	odid uint32
	id   uint16
}

// Decoder decodes IPFIX messages of one transport session, keeping the
// templates they define. Not safe for concurrent use.
type Decoder struct {
	templates map[tkey][]Field
}

// NewDecoder returns a decoder that knows no template yet.
func NewDecoder() *Decoder { return &Decoder{templates: make(map[tkey][]Field)} }

// MessageLen returns the length of the message at the start of b (from
// its header), for splitting a TCP stream; ErrShort if b has no header.
func MessageLen(b []byte) (int, error) {
	if len(b) < HeaderLen {
		return 0, ErrShort
	}
	if v := binary.BigEndian.Uint16(b); v != Version {
		return 0, fmt.Errorf("ipfix: version %d, want %d", v, Version)
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	if n < HeaderLen {
		return 0, fmt.Errorf("ipfix: message length %d is shorter than its header", n)
	}
	return n, nil
}

// Decode decodes the one message in b (b may hold more: the rest is
// ignored). A malformed set is an error; sets before it keep their effect.
func (d *Decoder) Decode(b []byte) (Message, error) {
	var m Message
	n, err := MessageLen(b)
	if err != nil {
		return m, err
	}
	if n > len(b) {
		return m, ErrShort
	}
	b = b[:n]
	m.Header = Header{Version: Version, Length: uint16(n), ExportTime: binary.BigEndian.Uint32(b[4:]),
		Seq: binary.BigEndian.Uint32(b[8:]), ODID: binary.BigEndian.Uint32(b[12:])}
	for p := b[HeaderLen:]; len(p) > 0; {
		if len(p) < SetHeaderLen {
			return m, fmt.Errorf("ipfix: %d bytes after the last set", len(p))
		}
		id, sl := binary.BigEndian.Uint16(p), int(binary.BigEndian.Uint16(p[2:]))
		if sl < SetHeaderLen || sl > len(p) {
			return m, fmt.Errorf("ipfix: set %d: length %d out of bounds (%d left)", id, sl, len(p))
		}
		body := p[SetHeaderLen:sl]
		p = p[sl:]
		switch {
		case id == TemplateSetID:
			if err := d.templateSet(&m, body); err != nil {
				return m, err
			}
		case id == OptionsSetID:
			// Options templates describe exporter metadata; not used here.
		case id < MinDataSetID:
			return m, fmt.Errorf("ipfix: reserved set ID %d", id)
		default:
			fs, ok := d.templates[tkey{m.Header.ODID, id}]
			if !ok {
				m.Unknown++
				continue
			}
			if err := dataSet(&m, id, fs, body); err != nil {
				return m, err
			}
		}
	}
	return m, nil
}

func (d *Decoder) templateSet(m *Message, b []byte) error {
	for len(b) >= 4 {
		id, count := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		b = b[4:]
		if id < MinDataSetID {
			return fmt.Errorf("ipfix: template ID %d below %d", id, MinDataSetID)
		}
		if count == 0 { // withdrawal
			delete(d.templates, tkey{m.ODID(), id})
			continue
		}
		fs := make([]Field, 0, min(count, len(b)/4))
		for range count {
			if len(b) < 4 {
				return fmt.Errorf("ipfix: template %d: cut in a field specifier", id)
			}
			f := Field{ID: binary.BigEndian.Uint16(b) &^ 0x8000, Length: binary.BigEndian.Uint16(b[2:])}
			ent := b[0]&0x80 != 0
			b = b[4:]
			if ent {
				if len(b) < 4 {
					return fmt.Errorf("ipfix: template %d: cut in an enterprise number", id)
				}
				f.PEN = binary.BigEndian.Uint32(b)
				b = b[4:]
			}
			if f.Length == 0 {
				return fmt.Errorf("ipfix: template %d: element %d has length 0", id, f.ID)
			}
			fs = append(fs, f)
		}
		d.templates[tkey{m.ODID(), id}] = fs
		m.Templates = append(m.Templates, id)
	}
	return nil // fewer than 4 bytes left: padding
}

// ODID is the message's observation domain.
func (m *Message) ODID() uint32 { return m.Header.ODID }

// minLen is the shortest record of template fs.
func minLen(fs []Field) int {
	n := 0
	for _, f := range fs {
		if f.Length == VarLen {
			n++
		} else {
			n += int(f.Length)
		}
	}
	return max(n, 1)
}

func dataSet(m *Message, id uint16, fs []Field, b []byte) error {
	least := minLen(fs)
	for len(b) >= least {
		r := Record{ODID: m.ODID(), Template: id, Values: make([]Value, 0, len(fs))}
		for _, f := range fs {
			n := int(f.Length)
			if f.Length == VarLen {
				if len(b) < 1 {
					return fmt.Errorf("ipfix: set %d: cut in a variable length", id)
				}
				n, b = int(b[0]), b[1:]
				if n == 255 {
					if len(b) < 2 {
						return fmt.Errorf("ipfix: set %d: cut in a variable length", id)
					}
					n, b = int(binary.BigEndian.Uint16(b)), b[2:]
				}
			}
			if n > len(b) {
				return fmt.Errorf("ipfix: set %d: element %d needs %d bytes, %d left", id, f.ID, n, len(b))
			}
			r.Values = append(r.Values, Value{Field: f, Data: append([]byte(nil), b[:n]...)})
			b = b[n:]
		}
		m.Records = append(m.Records, r)
	}
	return nil // what is left is padding
}
