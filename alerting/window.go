package alerting

import "time"

// Windows: a condition's time_range is cut into windowBuckets buckets of
// Window/6 of the evaluator's clock (as flowtable's scan tracker cuts its
// window). A window keeps a ring of windowSlots bucket slots: the 6 buckets
// lying wholly inside a window that ends in the current bucket, plus the one
// straddling its start. Its value at clock t, in bucket e = t / (Window/6),
// covers the signals of buckets e-6 .. e: every signal in [t-Window, t] and at
// most Window/6 of history just before t-Window (a 60 s condition sees at most
// 70 s). A window costs 72 bytes whatever the signal rate.
const (
	windowBuckets = 6
	windowSlots   = windowBuckets + 1

	// InstantWindow is the window of a condition without time_range
	// (Window <= 0): a Count sums the last minute's events, a Gauge's last
	// reading is taken as current for a minute.
	InstantWindow = time.Minute
)

// window is one condition's sliding window for one instance (or, for a
// condition that binds none of its rule's variables, for the whole rule).
//
// Count: slot[e%7] holds the sum of the Values of bucket e, for the buckets
// ep-6 .. ep. Gauge: slot[0] is the latest reading, read in bucket ep. The
// window is live (its condition has a value) while a signal fell into one of
// the last 7 buckets; an empty window has no value and its condition is
// false whatever the comparator (an absent series alerts on nothing).
type window struct {
	slot [windowSlots]float64
	ep   int64 // bucket of the latest signal
	has  bool  // a signal was ever added
}

func slotOf(ep int64) int {
	s := int(ep % windowSlots)
	if s < 0 {
		s += windowSlots
	}
	return s
}

// addCount adds v into bucket ep; ep never goes back (the clock is monotone).
func (w *window) addCount(ep int64, v float64) {
	if !w.has || ep-w.ep >= windowSlots {
		w.slot = [windowSlots]float64{}
	} else {
		for e := w.ep + 1; e <= ep; e++ {
			w.slot[slotOf(e)] = 0
		}
	}
	if !w.has || ep > w.ep {
		w.ep = ep
	}
	w.has = true
	w.slot[slotOf(w.ep)] += v
}

// setGauge records the latest reading v in bucket ep.
func (w *window) setGauge(ep int64, v float64) {
	w.slot[0] = v
	if !w.has || ep > w.ep {
		w.ep = ep
	}
	w.has = true
}

// live reports whether the window has a value in bucket ep.
func (w *window) live(ep int64) bool {
	return w.has && w.ep >= ep-windowBuckets
}

// value is the window's value in bucket ep (live must hold): a Count's sum
// over buckets ep-6 .. ep, a Gauge's latest reading.
func (w *window) value(kind MetricKind, ep int64) float64 {
	if kind == Gauge {
		return w.slot[0]
	}
	lo := ep - windowBuckets
	if w.ep-windowBuckets > lo {
		lo = w.ep - windowBuckets
	}
	var sum float64
	for e := lo; e <= w.ep; e++ {
		sum += w.slot[slotOf(e)]
	}
	return sum
}

// bucketWidth is the bucket width of a window in ns (at least 1).
func bucketWidth(d time.Duration) int64 {
	if d <= 0 {
		d = InstantWindow
	}
	bw := int64(d) / windowBuckets
	if bw < 1 {
		bw = 1
	}
	return bw
}

// epoch is clock t's bucket for width bw (floor division).
func epoch(t, bw int64) int64 {
	e := t / bw
	if t%bw != 0 && t < 0 {
		e--
	}
	return e
}
