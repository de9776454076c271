package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Label is one label of a series other than its metric name.
type Label struct{ Name, Value string }

// Sample is one value of one series at one tick; Name is the metric name as
// /metrics has it (e.g. "netsentry_engine_packets_total"), Labels the other
// labels, sorted by name.
type Sample struct {
	Name   string
	Labels []Label
	Value  float64
}

// Point is one stored sample.
type Point struct {
	T int64 // Unix milliseconds
	V float64
}

// SeriesInfo names one stored series.
type SeriesInfo struct {
	Ref    uint64
	Name   string
	Labels []Label // without the name, sorted
}

// MatchType is the comparison a Matcher makes.
type MatchType int

// The matcher types, as PromQL has them: =, !=, =~, !~.
const (
	MatchEqual MatchType = iota
	MatchNotEqual
	MatchRegexp
	MatchNotRegexp
)

// Matcher selects series by label; Name "__name__" matches the metric name.
// A series without the label has the value "" for it. Regular expressions
// are anchored at both ends, and . matches a newline, as in Prometheus.
type Matcher struct {
	Type        MatchType
	Name, Value string
}

// MetricName is the label name a Matcher uses for the metric name.
const MetricName = "__name__"

// series is one interned series. name and labels never change after it is
// made; the head buffers belong to the appender and are read under Store.mu.
type series struct {
	id     uint64
	name   string
	labels []Label

	// Samples of the open chunk window, not yet in a chunk.
	ts []int64
	vs []float64

	tickGen uint64 // Append that staged a value for it (dedup within a tick)
	tickIdx int    // index of that value in Store.staged
}

func (s *series) label(name string) string {
	if name == MetricName {
		return s.name
	}
	for _, l := range s.labels {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// appendSeriesKey appends the canonical encoding of a series: the name and
// each label name and value, each as a uvarint length and its bytes.
func appendSeriesKey(dst []byte, name string, labels []Label) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(name)))
	dst = append(dst, name...)
	for _, l := range labels {
		dst = binary.AppendUvarint(dst, uint64(len(l.Name)))
		dst = append(dst, l.Name...)
		dst = binary.AppendUvarint(dst, uint64(len(l.Value)))
		dst = append(dst, l.Value...)
	}
	return dst
}

var errSeriesKey = errors.New("corrupt series key")

func parseSeriesKey(b []byte) (name string, labels []Label, err error) {
	next := func() (string, bool) {
		n, l := binary.Uvarint(b)
		if l <= 0 || n > uint64(len(b)-l) {
			return "", false
		}
		s := string(b[l : l+int(n)])
		b = b[l+int(n):]
		return s, true
	}
	var ok bool
	if name, ok = next(); !ok || name == "" {
		return "", nil, errSeriesKey
	}
	for len(b) > 0 {
		var l Label
		if l.Name, ok = next(); !ok || l.Name == "" {
			return "", nil, errSeriesKey
		}
		if l.Value, ok = next(); !ok {
			return "", nil, errSeriesKey
		}
		if len(labels) > 0 && labels[len(labels)-1].Name >= l.Name {
			return "", nil, errSeriesKey
		}
		labels = append(labels, l)
	}
	return name, labels, nil
}

// checkLabels reports whether labels are sorted by name, without duplicates
// or empty names; sorted is false if they need sorting.
func checkLabels(labels []Label) (sorted bool, err error) {
	sorted = true
	for i, l := range labels {
		if l.Name == "" || l.Name == MetricName {
			return false, fmt.Errorf("check labels: bad label name %q", l.Name)
		}
		if i > 0 && labels[i-1].Name >= l.Name {
			sorted = false
		}
	}
	if !sorted {
		c := slices.Clone(labels)
		sort.Slice(c, func(i, j int) bool { return c[i].Name < c[j].Name })
		for i := 1; i < len(c); i++ {
			if c[i-1].Name == c[i].Name {
				return false, fmt.Errorf("check labels: duplicate label %q", c[i].Name)
			}
		}
	}
	return sorted, nil
}

// matcher is a compiled Matcher.
type matcher struct {
	Matcher
	re *regexp.Regexp
}

func compileMatchers(ms []Matcher) ([]matcher, error) {
	out := make([]matcher, len(ms))
	for i, m := range ms {
		out[i].Matcher = m
		switch m.Type {
		case MatchEqual, MatchNotEqual:
		case MatchRegexp, MatchNotRegexp:
			re, err := regexp.Compile("^(?s:" + m.Value + ")$")
			if err != nil {
				return nil, fmt.Errorf("compile matcher %s: %w", m.Name, err)
			}
			out[i].re = re
		default:
			return nil, fmt.Errorf("compile matcher %s: unknown type %d", m.Name, m.Type)
		}
	}
	return out, nil
}

func (m *matcher) matches(v string) bool {
	switch m.Type {
	case MatchEqual:
		return v == m.Value
	case MatchNotEqual:
		return v != m.Value
	case MatchRegexp:
		return m.re.MatchString(v)
	default:
		return !m.re.MatchString(v)
	}
}

// index is the in-memory series index: every interned series by id and by
// canonical key, and postings (label name -> value -> ids, ascending). It is
// rebuilt at Open from the persisted series records.
type index struct {
	byKey    map[string]*series
	byID     []*series // byID[id-1]
	postings map[string]map[string][]uint64
}

func newIndex() *index {
	return &index{byKey: map[string]*series{}, postings: map[string]map[string][]uint64{}}
}

func (x *index) add(s *series, key string) {
	x.byKey[key] = s
	x.byID = append(x.byID, s)
	x.post(MetricName, s.name, s.id)
	for _, l := range s.labels {
		x.post(l.Name, l.Value, s.id)
	}
}

func (x *index) post(name, value string, id uint64) {
	vals := x.postings[name]
	if vals == nil {
		vals = map[string][]uint64{}
		x.postings[name] = vals
	}
	vals[value] = append(vals[value], id)
}

func (x *index) get(id uint64) *series {
	if id == 0 || id > uint64(len(x.byID)) {
		return nil
	}
	return x.byID[id-1]
}

// candidates returns the ids that can match ms: the postings of the most
// selective matcher that does not match "" (such a matcher needs the label
// present), or nil and all=true when every matcher matches "". The caller
// checks every matcher on each candidate.
func (x *index) candidates(ms []matcher) (ids []uint64, all bool) {
	best := -1
	for i := range ms {
		m := &ms[i]
		if m.matches("") {
			continue
		}
		vals := x.postings[m.Name]
		var got []uint64
		if m.Type == MatchEqual {
			got = vals[m.Value]
		} else {
			var lists [][]uint64
			for v, l := range vals {
				if m.matches(v) {
					lists = append(lists, l)
				}
			}
			got = union(lists)
		}
		if best < 0 || len(got) < len(ids) {
			best, ids = i, got
		}
		if len(ids) == 0 {
			return nil, false
		}
	}
	return ids, best < 0
}

func union(lists [][]uint64) []uint64 {
	switch len(lists) {
	case 0:
		return nil
	case 1:
		return lists[0]
	}
	var out []uint64
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (s *series) info() SeriesInfo {
	return SeriesInfo{Ref: s.id, Name: s.name, Labels: slices.Clone(s.labels)}
}

// String renders the series as PromQL would write it, for errors and logs.
func (s SeriesInfo) String() string {
	var b strings.Builder
	b.WriteString(s.Name)
	b.WriteByte('{')
	for i, l := range s.Labels {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", l.Name, l.Value)
	}
	b.WriteByte('}')
	return b.String()
}
