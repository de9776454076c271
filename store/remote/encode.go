package remote

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/netsentry/netsentry/store"
)

// SensorLabel is the label every series sent carries.
const SensorLabel = "sensor"

// tick is one decoded queue record.
type tick struct {
	ts      int64 // Unix ms
	samples []store.Sample
}

// encoder turns ticks into one request body for a backend.
type encoder interface {
	// encode returns the body of one request holding ticks (in time
	// order) and how many samples it could not hold (InfluxDB: NaN and
	// ±Inf); buf is scratch space the body may use.
	encode(buf []byte, ticks []tick) (body []byte, skipped int)
}

// promEncoder writes a Prometheus remote-write 1.0 request: a
// prompb.WriteRequest, snappy-compressed (block format). A series appears
// once, its samples in time order; its labels are sorted by name,
// __name__ first among them as the byte order puts it, with sensor set.
type promEncoder struct {
	sensor string
	idx    map[string]int
	key    []byte
	req    prompb.WriteRequest
	raw    []byte
}

func newPromEncoder(sensor string) *promEncoder {
	return &promEncoder{sensor: sensor, idx: map[string]int{}}
}

func (e *promEncoder) encode(buf []byte, ticks []tick) ([]byte, int) {
	clear(e.idx)
	e.req.Timeseries = e.req.Timeseries[:0]
	for _, t := range ticks {
		for i := range t.samples {
			s := &t.samples[i]
			e.key = append(e.key[:0], s.Name...)
			for _, l := range s.Labels {
				e.key = append(e.key, 0)
				e.key = append(e.key, l.Name...)
				e.key = append(e.key, 0)
				e.key = append(e.key, l.Value...)
			}
			j, ok := e.idx[string(e.key)]
			if !ok {
				j = len(e.req.Timeseries)
				e.idx[string(e.key)] = j
				e.req.Timeseries = append(e.req.Timeseries, prompb.TimeSeries{Labels: promLabels(s, e.sensor)})
			}
			ts := &e.req.Timeseries[j]
			ts.Samples = append(ts.Samples, prompb.Sample{Value: s.Value, Timestamp: t.ts})
		}
	}
	size := e.req.Size()
	if cap(e.raw) < size {
		e.raw = make([]byte, size)
	}
	n, err := e.req.MarshalToSizedBuffer(e.raw[:size])
	if err != nil || n != size {
		panic("BUG: marshal remote write request: size changed")
	}
	return snappy.Encode(buf[:cap(buf)], e.raw[:size]), 0
}

// promLabels returns the sample's labels for remote write: __name__, the
// sample's labels but sensor, and sensor, sorted by name.
func promLabels(s *store.Sample, sensor string) []prompb.Label {
	ls := make([]prompb.Label, 0, len(s.Labels)+2)
	ls = append(ls, prompb.Label{Name: "__name__", Value: s.Name})
	for _, l := range s.Labels {
		if l.Name != SensorLabel {
			ls = append(ls, prompb.Label{Name: l.Name, Value: l.Value})
		}
	}
	ls = append(ls, prompb.Label{Name: SensorLabel, Value: sensor})
	slices.SortFunc(ls, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
	return ls
}

// influxEncoder writes InfluxDB line protocol, one line per sample:
// the metric name as the measurement, its labels and sensor as tags, the
// value as the float field "value", the timestamp in milliseconds (the
// request says precision=ms). InfluxDB stores no NaN or ±Inf: such
// samples are skipped.
type influxEncoder struct {
	sensor string
}

func (e *influxEncoder) encode(buf []byte, ticks []tick) ([]byte, int) {
	b := buf[:0]
	skipped := 0
	for _, t := range ticks {
		for i := range t.samples {
			s := &t.samples[i]
			if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
				skipped++
				continue
			}
			b = appendEscaped(b, s.Name, false)
			tagged := false
			for _, l := range s.Labels {
				if l.Name == SensorLabel {
					continue
				}
				if !tagged && l.Name > SensorLabel {
					b = appendTag(b, SensorLabel, e.sensor)
					tagged = true
				}
				b = appendTag(b, l.Name, l.Value)
			}
			if !tagged {
				b = appendTag(b, SensorLabel, e.sensor)
			}
			b = append(b, " value="...)
			b = strconv.AppendFloat(b, s.Value, 'g', -1, 64)
			b = append(b, ' ')
			b = strconv.AppendInt(b, t.ts, 10)
			b = append(b, '\n')
		}
	}
	return b, skipped
}

func appendTag(b []byte, k, v string) []byte {
	if v == "" {
		return b // InfluxDB has no empty tag value: it is no tag
	}
	b = append(b, ',')
	b = appendEscaped(b, k, true)
	b = append(b, '=')
	return appendEscaped(b, v, true)
}

// appendEscaped writes s escaped for the line protocol: commas and spaces
// (and in tags equals signs) get a backslash; a newline, which no line
// protocol string can hold, becomes an escaped space, and a trailing
// backslash, which would escape the separator after it, an underscore.
func appendEscaped(b []byte, s string, tag bool) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ',' || c == ' ' || (tag && c == '='):
			b = append(b, '\\', c)
		case c == '\n' || c == '\r':
			b = append(b, '\\', ' ')
		case c == '\\' && i == len(s)-1:
			b = append(b, '_')
		default:
			b = append(b, c)
		}
	}
	return b
}
