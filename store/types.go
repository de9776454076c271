package store

// The types of the store contract that the query side (queryable.go) needs.
// They are written exactly as the contract of issue 11 writes them.

type Label struct{ Name, Value string }

type Point struct {
	T int64 // Unix milliseconds
	V float64
}

type SeriesInfo struct {
	Ref    uint64
	Name   string
	Labels []Label // without the name, sorted
}

// Matcher selects series by label; Name "__name__" matches the metric name.
type MatchType int

const (
	MatchEqual MatchType = iota
	MatchNotEqual
	MatchRegexp
	MatchNotRegexp
)

type Matcher struct {
	Type        MatchType
	Name, Value string
}

// SampleSource is what the PromQL Queryable reads (*Store satisfies it).
type SampleSource interface {
	Select(matchers []Matcher, mint, maxt int64) ([]SeriesInfo, error)
	Points(ref uint64, mint, maxt int64, dst []Point) ([]Point, error)
	LabelNames(matchers []Matcher, mint, maxt int64) ([]string, error)
	LabelValues(name string, matchers []Matcher, mint, maxt int64) ([]string, error)
}
