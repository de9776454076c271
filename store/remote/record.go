package remote

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/klauspost/compress/snappy"

	"github.com/netsentry/netsentry/store"
)

// recordVersion is the first byte of every queue record.
const recordVersion = 1

// maxRecordBody is the largest decompressed body a record may claim: far
// above any tick (/metrics has a few thousand series), low enough that a
// damaged length cannot ask for an absurd allocation.
const maxRecordBody = 64 << 20

// errRecord is wrapped by every decoding error.
var errRecord = errors.New("bad queue record")

// appendRecord encodes one tick, samples at ts (Unix ms), as a queue
// record appended to dst; body is scratch space, returned for reuse.
func appendRecord(dst, body []byte, ts int64, samples []store.Sample) (rec, scratch []byte) {
	body = body[:0]
	for i := range samples {
		s := &samples[i]
		body = appendString(body, s.Name)
		body = binary.AppendUvarint(body, uint64(len(s.Labels)))
		for _, l := range s.Labels {
			body = appendString(body, l.Name)
			body = appendString(body, l.Value)
		}
		body = binary.LittleEndian.AppendUint64(body, math.Float64bits(s.Value))
	}
	dst = append(dst, recordVersion)
	dst = binary.AppendUvarint(dst, uint64(len(samples)))
	dst = binary.AppendVarint(dst, ts)
	n := len(dst)
	dst = append(dst, make([]byte, snappy.MaxEncodedLen(len(body)))...)
	enc := snappy.Encode(dst[n:], body)
	return dst[:n+len(enc)], body
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// recordHeader returns a record's sample count and timestamp, and the
// offset of its compressed body.
func recordHeader(rec []byte) (n uint64, ts int64, off int, err error) {
	if len(rec) == 0 || rec[0] != recordVersion {
		return 0, 0, 0, fmt.Errorf("%w: unknown format", errRecord)
	}
	off = 1
	n, k := binary.Uvarint(rec[off:])
	if k <= 0 {
		return 0, 0, 0, fmt.Errorf("%w: sample count", errRecord)
	}
	off += k
	ts, k = binary.Varint(rec[off:])
	if k <= 0 {
		return 0, 0, 0, fmt.Errorf("%w: timestamp", errRecord)
	}
	off += k
	// A sample takes at least 10 bytes (name length, label count, value).
	if n > maxRecordBody/10 {
		return 0, 0, 0, fmt.Errorf("%w: %d samples", errRecord, n)
	}
	return n, ts, off, nil
}

// decodeRecord decodes a queue record, appending its samples to dst; body
// is scratch space for the decompressed body, returned for reuse. The
// samples' strings are copies: they do not share rec or body.
func decodeRecord(rec, body []byte, dst []store.Sample) (ts int64, out []store.Sample, scratch []byte, err error) {
	n, ts, off, err := recordHeader(rec)
	if err != nil {
		return 0, dst, body, err
	}
	size, err := snappy.DecodedLen(rec[off:])
	if err != nil || size > maxRecordBody {
		return 0, dst, body, fmt.Errorf("%w: body length", errRecord)
	}
	if cap(body) < size {
		body = make([]byte, size)
	}
	b, err := snappy.Decode(body[:cap(body)], rec[off:])
	if err != nil {
		return 0, dst, body, fmt.Errorf("%w: %v", errRecord, err)
	}
	d := decoder{b: b}
	start := len(dst)
	for i := uint64(0); i < n; i++ {
		s := store.Sample{Name: d.str()}
		nl := d.uvarint()
		if nl > uint64(len(d.b)) { // each label takes at least 2 bytes
			d.fail()
			break
		}
		if nl > 0 {
			s.Labels = make([]store.Label, 0, nl)
		}
		for j := uint64(0); j < nl && d.err == nil; j++ {
			s.Labels = append(s.Labels, store.Label{Name: d.str(), Value: d.str()})
		}
		s.Value = math.Float64frombits(d.u64())
		if d.err != nil {
			break
		}
		dst = append(dst, s)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	if d.err != nil {
		return 0, dst[:start], b, fmt.Errorf("%w: %d samples promised, body damaged", errRecord, n)
	}
	return ts, dst, b, nil
}

// decoder reads a record body; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errRecord
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) u64() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}
