package store

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// genSeries makes realistic sample streams, deterministic from a seed and
// the series number, so that a test can regenerate what it wrote and compare
// (the generator, not the store, is the oracle).
type genSeries struct {
	name   string
	labels []Label
	kind   int
	r      *rand.Rand
	v      float64
	rate   float64
}

const (
	genCounter = iota
	genGauge
	genDecimal
	genConst
	genNaNy
	genKinds
)

func newGen(seed uint64, i int) *genSeries {
	g := &genSeries{r: rand.New(rand.NewPCG(seed, uint64(i)))}
	switch {
	case i%10 < 4:
		g.kind = genCounter
	case i%10 < 6:
		g.kind = genGauge
	case i%10 < 8:
		g.kind = genDecimal
	case i%10 < 9:
		g.kind = genConst
	default:
		g.kind = genNaNy
	}
	names := [...]string{"netsentry_test_packets_total", "netsentry_test_temperature_celsius",
		"netsentry_test_cpu_ratio", "netsentry_test_info", "netsentry_test_latency_seconds"}
	g.name = names[g.kind]
	g.labels = []Label{{"device", fmt.Sprintf("eth%d", i%8)}, {"idx", fmt.Sprint(i)}}
	if i%3 == 0 {
		g.labels = append(g.labels, Label{"queue", fmt.Sprint(i % 4)})
	}
	switch g.kind {
	case genCounter:
		g.rate = math.Exp(g.r.Float64() * 12) // packets per tick, 1..160k
	case genGauge:
		g.v = 20 + 40*g.r.Float64()
	case genDecimal:
		g.v = 0.5
	case genConst:
		g.v = float64(g.r.IntN(3))
		if i%20 == 8 {
			g.v = 1.5e9 + float64(i) // a start time
		}
	}
	return g
}

// next returns the series' next value.
func (g *genSeries) next() float64 {
	switch g.kind {
	case genCounter:
		if g.r.IntN(50000) == 0 {
			g.v = 0 // restart
		}
		g.v += math.Floor(g.rate * (0.8 + 0.4*g.r.Float64()))
	case genGauge:
		g.v += g.r.NormFloat64() * 0.3
	case genDecimal:
		g.v = math.Round((g.v+g.r.NormFloat64()*0.02)*100) / 100
		g.v = math.Max(0, math.Min(1, g.v))
	case genNaNy:
		switch g.r.IntN(20) {
		case 0:
			return math.NaN()
		case 1:
			return math.Float64frombits(0x7ff8dead00000001) // a NaN with a payload
		case 2:
			return math.Inf(1)
		case 3:
			return math.Copysign(0, -1)
		}
		return g.r.ExpFloat64() / 1000
	}
	return g.v
}
