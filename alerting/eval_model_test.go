package alerting

import (
	"fmt"
	"math/rand"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// naive is an independent model of the evaluation rules in the package doc:
// it keeps every signal and, after each signal or tick, recomputes every
// condition of every (rule, group key) from the raw list, with no windows,
// rings or instance table. Its state changes must equal the Evaluator's
// History.
type naive struct {
	rules   []*Compiled
	sigs    []naiveSig
	clock   int64
	started bool
	keys    []map[string]string // per rule: group key -> its first signal's labels
	holds   []map[string]bool
	changes []string
}

type naiveSig struct {
	s   Signal
	eff int64 // its time on the evaluator's clock: max(clock, At)
}

func newNaive(rules []*Compiled) *naive {
	n := &naive{rules: rules}
	for range rules {
		n.keys = append(n.keys, map[string]string{})
		n.holds = append(n.holds, map[string]bool{})
	}
	return n
}

func varsOf(r *Compiled) []string {
	var v []string
	for _, g := range r.GroupVars {
		v = append(v, strings.TrimPrefix(g, "$"))
	}
	sort.Strings(v)
	return v
}

// boundLabel returns, for condition c, the label that binds variable v.
func boundLabel(c CompiledCond, v string) (string, bool) {
	for l, x := range c.Vars {
		if strings.TrimPrefix(x, "$") == v {
			return l, true
		}
	}
	return "", false
}

// keyOf is the group key a signal has for condition c, "" and false if c
// does not pass it.
func keyOf(r *Compiled, c CompiledCond, s Signal) (string, bool) {
	if s.Metric != c.Metric {
		return "", false
	}
	for k, v := range c.Equal {
		if x, ok := s.Labels[k]; !ok || x != v {
			return "", false
		}
	}
	for k, v := range c.NotEqual {
		if x, ok := s.Labels[k]; ok && x == v {
			return "", false
		}
	}
	var parts []string
	for _, v := range varsOf(r) {
		l, ok := boundLabel(c, v)
		if !ok {
			continue
		}
		x, ok := s.Labels[l]
		if !ok {
			return "", false
		}
		parts = append(parts, v+"="+x)
	}
	return strings.Join(parts, ","), true
}

func isGlobal(r *Compiled, c CompiledCond) bool { return len(r.GroupVars) > 0 && len(c.Vars) == 0 }

// value of condition c for key at the clock: Count sums, Gauge takes the
// last, of the passing signals whose bucket is within 6 of the clock's.
func (n *naive) value(r *Compiled, c CompiledCond, key string) (float64, bool) {
	w := c.Window
	if w <= 0 {
		w = InstantWindow
	}
	bw := int64(w) / 6
	now := n.clock / bw
	var sum, last float64
	live := false
	for _, x := range n.sigs {
		if x.eff/bw < now-6 {
			continue
		}
		k, ok := keyOf(r, c, x.s)
		if !ok || (!isGlobal(r, c) && k != key) {
			continue
		}
		live = true
		sum += x.s.Value
		last = x.s.Value
	}
	if c.Kind == Gauge {
		return last, live
	}
	return sum, live
}

func (n *naive) ruleHolds(r *Compiled, key string) (bool, map[string]float64) {
	exists := false
	and := !strings.EqualFold(r.Logic, "OR")
	res := and
	vals := map[string]float64{}
	for ci, c := range r.Conds {
		v, live := n.value(r, c, key)
		if live && !isGlobal(r, c) {
			exists = true
		}
		if live {
			name := c.Metric
			if _, dup := vals[name]; dup {
				name += "[" + strconv.Itoa(ci) + "]"
			}
			vals[name] = v
		}
		ok := live && c.Cmp.Compare(v, c.Threshold)
		if and {
			res = res && ok
		} else {
			res = res || ok
		}
	}
	return exists && res, vals
}

func (n *naive) event(at time.Time, s *Signal) {
	t := at.UnixNano()
	if !n.started || t > n.clock {
		n.clock, n.started = t, true
	}
	if s != nil {
		n.sigs = append(n.sigs, naiveSig{*s, n.clock})
		for ri, r := range n.rules {
			for _, c := range r.Conds {
				if isGlobal(r, c) {
					continue
				}
				if k, ok := keyOf(r, c, *s); ok {
					n.keys[ri][k] = k
				}
			}
		}
	}
	for ri, r := range n.rules {
		keys := make([]string, 0, len(n.keys[ri]))
		for k := range n.keys[ri] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			h, vals := n.ruleHolds(r, k)
			if h == n.holds[ri][k] {
				continue
			}
			n.holds[ri][k] = h
			st := "resolved"
			if h {
				st = "firing"
			}
			n.changes = append(n.changes, change(n.clock, r.Rule.Name, k, st, vals))
		}
	}
}

func change(t int64, rule, key, status string, vals map[string]float64) string {
	names := make([]string, 0, len(vals))
	for k := range vals {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s {%s} %s", t, rule, key, status)
	if status == "firing" {
		for _, k := range names {
			fmt.Fprintf(&b, " %s=%g", k, vals[k])
		}
	}
	return b.String()
}

func randomRules(rng *rand.Rand, n int) []*Compiled {
	windows := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 5 * time.Second, 1500 * time.Millisecond}
	var rules []*Compiled
	for i := range n {
		grouped := rng.Intn(3) > 0
		r := &Compiled{Rule: Rule{ID: "r" + strconv.Itoa(i), Name: "rule" + strconv.Itoa(i), Severity: "info"}, Logic: "AND"}
		if rng.Intn(2) == 0 {
			r.Logic = "OR"
		}
		if grouped {
			r.GroupVars = []string{"$src"}
		}
		for range 1 + rng.Intn(3) {
			c := CompiledCond{
				Metric: "m" + strconv.Itoa(rng.Intn(3)), Kind: MetricKind(1 + rng.Intn(2)), Cmp: Comparator(1 + rng.Intn(6)),
				Window: windows[rng.Intn(len(windows))],
			}
			if rng.Intn(12) == 0 {
				c.Window = 0
			}
			if c.Kind == Count {
				c.Threshold = float64(rng.Intn(15))
			} else {
				c.Threshold = float64(rng.Intn(8))
			}
			if rng.Intn(3) == 0 {
				c.Equal = map[string]string{"p": "a"}
			}
			if rng.Intn(4) == 0 {
				c.NotEqual = map[string]string{"p": "b"}
			}
			switch {
			case grouped && rng.Intn(5) == 0:
				c.Metric = "g" // shared by the rule's instances
			case grouped:
				c.Vars = map[string]string{"src": "$src"}
			}
			r.Conds = append(r.Conds, c)
		}
		if grouped {
			hasOwn := false
			for _, c := range r.Conds {
				hasOwn = hasOwn || len(c.Vars) > 0
			}
			if !hasOwn {
				r.Conds[0].Metric = "m0"
				r.Conds[0].Vars = map[string]string{"src": "$src"}
			}
		}
		rules = append(rules, r)
	}
	return rules
}

func TestEvaluatorMatchesNaiveModel(t *testing.T) {
	for seed := int64(1); seed <= 12; seed++ {
		rng := rand.New(rand.NewSource(seed))
		rules := randomRules(rng, 6)
		e := NewEvaluator(EvalOptions{GroupWait: -1}, func(Notification) {})
		e.SetRules(rules)
		model := newNaive(rules)
		clock := t0
		for range 700 {
			if rng.Intn(5) == 0 {
				at := clock.Add(time.Duration(rng.Intn(1500)) * time.Millisecond)
				if at.After(clock) {
					clock = at
				}
				e.Tick(at)
				model.event(at, nil)
				continue
			}
			at := clock.Add(time.Duration(rng.Intn(300)) * time.Millisecond)
			if rng.Intn(10) == 0 {
				at = clock.Add(-time.Duration(rng.Intn(3000)) * time.Millisecond) // late
			}
			if at.After(clock) {
				clock = at
			}
			s := Signal{Metric: "m" + strconv.Itoa(rng.Intn(3)), Value: float64(rng.Intn(6)), At: at}
			if rng.Intn(6) == 0 {
				s.Metric = "g"
			} else {
				s.Labels = map[string]string{}
				if rng.Intn(10) > 0 {
					s.Labels["src"] = "s" + strconv.Itoa(rng.Intn(6))
				}
				if p := rng.Intn(3); p < 2 {
					s.Labels["p"] = string(rune('a' + p))
				}
			}
			e.Ingest([]Signal{s})
			model.event(at, &s)
		}
		var got []string
		for _, a := range e.History(time.Time{}, time.Time{}) {
			at := a.StartsAt
			if a.Status == "resolved" {
				at = a.EndsAt
			}
			got = append(got, change(at.UnixNano(), a.Rule, a.GroupKey, a.Status, a.Values))
		}
		want := model.changes
		sort.Strings(got) // same-time changes may come in any order; times lead the strings
		sort.Strings(want)
		if len(want) < 20 {
			t.Errorf("seed %d: only %d state changes: a weak stream", seed, len(want))
		}
		if testing.Verbose() {
			t.Logf("seed %d: %d state changes agree", seed, len(want))
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("seed %d: evaluator and naive model disagree\n%s", seed, firstDiff(got, want))
		}
		active := map[string]bool{}
		for _, a := range e.Active() {
			active[a.Rule+"{"+a.GroupKey+"}"] = true
		}
		for ri, r := range rules {
			for k, h := range model.holds[ri] {
				if h != active[r.Rule.Name+"{"+k+"}"] {
					t.Errorf("seed %d: %s{%s}: model holds %v, Active %v", seed, r.Rule.Name, k, h, !h)
				}
			}
		}
	}
}

func firstDiff(got, want []string) string {
	for i := 0; i < len(got) || i < len(want); i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			return fmt.Sprintf("at %d (of %d / %d):\n got  %s\n want %s", i, len(got), len(want), g, w)
		}
	}
	return ""
}
