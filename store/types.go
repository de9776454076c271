package store

// The contract's types live in series.go (engineer CORE); the query side
// adds only the interface it reads.

// SampleSource is what the PromQL Queryable reads (*Store satisfies it).
type SampleSource interface {
	Select(matchers []Matcher, mint, maxt int64) ([]SeriesInfo, error)
	Points(ref uint64, mint, maxt int64, dst []Point) ([]Point, error)
	LabelNames(matchers []Matcher, mint, maxt int64) ([]string, error)
	LabelValues(name string, matchers []Matcher, mint, maxt int64) ([]string, error)
}
