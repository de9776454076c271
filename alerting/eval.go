// Package alerting evaluates the description's alert rules over the sensor's
// signals and hands notifications to the notifiers.
//
// # Evaluation (eval.go, window.go)
//
// The Evaluator evaluates on ingest: Ingest(signals) adds each signal to the
// windows of the conditions whose metric it names and whose filters it
// passes, and re-evaluates only the (rule, group key) instances those windows
// belong to, so an alert leaves within the call that brought the crossing
// signal (plus GroupWait). Nothing is polled: Tick(now) only slides windows
// (resolving what emptied), sends held and repeated notifications and flushes
// group_wait batches, and Next says when a Tick has work.
//
// Time is the signals' time (Signal.At; a zero At takes EvalOptions.Now) and
// Tick's now, on one clock: the evaluator's clock is the latest of them, and a
// signal older than the clock counts as if it came at the clock (as the scan
// tracker does). Nothing in Ingest or Tick reads the wall clock.
//
// Windows (window.go): a condition's time_range (Window; none: InstantWindow,
// one minute) is cut into 6 buckets; a window keeps 7 bucket slots, so its
// value covers every signal in [now-Window, now] and at most Window/6 before.
//   - Count: the sum of the Values (new events) of the signals in the window.
//   - Gauge: the latest reading, compared as it is (the end of the window, not
//     its max or average); a reading older than the window is stale. A
//     distinct count over a window (network.unique_dest_port_count: the scan
//     tracker's own 60 s figure) is a Gauge: distinct counts do not sum.
//
// A window without a signal in it has no value, and its condition is false
// whatever the comparator (like an absent Prometheus series): a `lt`
// condition fires only while its metric reports.
//
// Group key: the values of the rule's $variables (GroupVars; the labels a
// condition binds with "key = $var"), e.g. "src_ip=10.0.0.5". A condition
// binding every variable keeps one window per group key, and the conditions
// of a rule join on that key (AND: all hold, OR: one holds). A condition
// binding none (cpu.usage in a per-source rule) has one window for the rule,
// shared by every instance; a change of it re-evaluates all of them. An
// instance exists while one of its own windows holds a signal. A condition
// binding only some variables, or a rule with variables whose conditions all
// bind none, makes SetRules reject the rule (counted in
// EvalStats.RulesRejected). Equal filters ("key = value") pass
// only signals with that label value, NotEqual ("key != value") every signal
// without it (an absent label passes); a signal lacking a bound label feeds
// nothing.
//
// Instances: inactive -> pending (the rule holds: the condition became true;
// there is no `for` hold in the description, so it fires at once, and is
// pending only until its notification leaves, GroupWait later, or while
// throttle_sec holds it back) -> firing (notified) -> resolved (the condition
// is false at an Ingest or a Tick, e.g. a window emptied) -> inactive.
// Active lists pending and firing instances; History the fired and resolved
// state changes (HistorySize entries, the oldest dropped and counted).
//
// Throttle (Compiled.Throttle, else throttle_sec) per (rule, group key): at
// most one firing notification per throttle window. An instance still firing
// when its throttle window ends is notified again (a reminder, like
// Alertmanager's repeat_interval); one that fires again within the window
// after resolving is held (pending) until the window ends, and notified then
// if it still holds. A resolved notification is sent for every instance whose
// firing was notified, and never throttled. Throttle 0: one notification per
// firing episode, no reminders.
//
// Correlation: the notifications of one rule that become due within GroupWait
// of the first (Alertmanager's group_wait) leave together, as ONE
// Notification per channel of the rule (its notifications, else
// EvalOptions.DefaultChannels) holding all their alerts. group_interval
// equals group_wait: a later change opens a new batch. A negative GroupWait
// sends at the end of each Ingest or Tick call.
//
// Bounded memory: at most MaxInstances live instances (420 bytes each for
// the two-condition Port Scan rule, measured by TestInstanceCap: the
// instance, a 72-byte window per condition, its key and index entry). A new group key past the cap
// evicts the least recently fed of 8 instances drawn at random that is
// neither pending nor firing (else the signal is refused for that rule); both
// count as overflow in EvalStats. The first overflow raises one synthetic
// alert named OverflowRule (sent to DefaultChannels), which resolves at the
// first Tick that finds the instances below 90 % of the cap. Instances that
// are inactive, with empty windows and no throttle window running, are freed
// at the rule's next bucket boundary.
//
// Notifications leave through the out function given to NewEvaluator, called
// after the evaluator's lock is released, from the goroutine that called
// Ingest, Tick or SetRules; out must not block (the Dispatcher's Send never
// does). Their Alerts' maps are shared and read-only.
//
// Threading: Ingest and Tick come from one goroutine (the feeder); SetRules,
// Active, History and Stats may come from any. One mutex guards the state,
// taken once per Ingest call. Steady-state Ingest (instances that exist, no
// state change) allocates nothing; a new instance allocates its key and
// windows (reused after a free), a state change its Alert.
package alerting

import (
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"hash/maphash"
)

// Defaults and limits of the Evaluator.
const (
	DefaultMaxInstances = 100_000
	// DefaultGroupWait is short because the promise is < 50 ms p99 from the
	// event to the receiver; rules that fire together within it still group.
	DefaultGroupWait = 10 * time.Millisecond
	// HistorySize is the number of state changes History keeps.
	HistorySize = 10_000
	// OverflowRule names the synthetic alert about the instance cap.
	OverflowRule = "alerting: instance limit reached"

	evictSample = 8
	noTime      = math.MaxInt64
	never       = math.MinInt64
)

// Signal is one metric reading: Labels holds the group labels (src_ip=...) for per-source metrics.
// Count metrics: Value is the count of new events at At (added into the window); Gauge: the level.
type Signal struct {
	Metric string
	Labels map[string]string // nil for unlabelled metrics
	Value  float64
	At     time.Time
}

// EvalOptions configures an Evaluator.
type EvalOptions struct {
	MaxInstances int           // cap on live (rule, group key) instances; past it: counted overflow + one overflow alert (0: DefaultMaxInstances)
	GroupWait    time.Duration // correlation: instances of a rule firing within it go in one notification (0: DefaultGroupWait; < 0: none)
	Now          func() time.Time
	// DefaultChannels receive the alerts of rules that name no channel
	// (alerts.notification_channels) and the overflow alert.
	DefaultChannels []Channel
}

// EvalStats are the Evaluator's counters.
type EvalStats struct {
	Rules          int    // rules evaluated
	RulesRejected  int    // rules SetRules could not evaluate (see the package doc)
	Instances      int    // live (rule, group key) instances
	Pending        int    // instances whose condition holds, not yet notified
	Firing         int    // instances notified as firing
	Signals        uint64 // signals ingested
	Overflow       uint64 // new group keys that found the cap (Evicted + Refused)
	Evicted        uint64 // idle instances evicted for a new group key
	Refused        uint64 // new group keys refused (no idle instance among the sample)
	OverflowFiring bool   // the OverflowRule alert fires
	Throttled      uint64 // firing notifications held back by throttle
	Sent           uint64 // notifications passed to out
	Dropped        uint64 // notifications dropped (no out function)
	Unrouted       uint64 // alerts of a rule with no channel and no DefaultChannels
	HistoryDropped uint64 // state changes that left the History ring
	// FeedDropped is not the evaluator's: its feeder's owner sets it (the
	// daemon: worker reports lost to a full feed ring, sensor.AlertFeedDropped).
	FeedDropped uint64
}

const (
	stFree uint8 = iota
	stInactive
	stPending
	stFiring
)

type kv struct{ k, v string }

type condState struct {
	metric   string
	kind     MetricKind
	cmp      Comparator
	thr      float64
	win      time.Duration
	bw       int64
	eq, ne   []kv
	varLabel []string // per rule variable: the label bound to it
	global   bool     // binds none of the rule's variables
	gwin     window   // the window of a global condition
}

type batchEntry struct {
	idx     int32 // instance, for firing entries
	firing  bool
	dropped bool
	alert   Alert
}

type ruleState struct {
	c        *Compiled
	seq      uint64
	id, name string
	severity string
	desc     string
	vars     []string // variable names without '$', sorted
	conds    []condState
	and      bool
	throttle int64
	chans    []Channel

	head      int32 // first instance of the rule's list, -1 if none
	nextSweep int64
	batch     []batchEntry
	batchDue  int64
}

type inst struct {
	rule       *ruleState
	hash       uint64
	nextHash   int32
	prev, next int32
	vals       []string
	key        string
	win        []window
	state      uint8
	batched    int32 // index+1 of its firing entry in the rule's batch
	startsAt   int64
	lastNotify int64 // time of the last firing notification, never if none
	due        int64 // held or reminder notification due, 0 if none
	fed        int64 // clock of the last signal (eviction)
	sig        uint64
	labels     map[string]string
	fp         string
}

type metricRef struct {
	rs    *ruleState
	conds []int
}

// Evaluator evaluates rules on ingest; see the package doc.
type Evaluator struct {
	mu      sync.Mutex
	opt     EvalOptions
	out     func(Notification)
	seed    maphash.Seed
	clock   int64
	started bool
	gw      int64

	rules    []*ruleState
	byMetric map[string][]metricRef
	seq      uint64

	insts []inst
	free  []int32
	index map[uint64]int32
	live  int
	rng   uint64
	sig   uint64

	nextSweep int64
	nextFlush int64

	touched      []int32
	vals         []string // scratch: a signal's variable values
	touchedRules []*ruleState
	queued       []Notification

	ovFiring bool
	ovStart  int64
	ovLabels map[string]string

	hist     []Alert
	histHead int

	stats EvalStats
}

// NewEvaluator evaluates rules on ingest: every Signal updates the windows it feeds and
// re-evaluates only the conditions it can change, so latency is the signal's, not a scan
// interval's. Instances go pending -> firing -> resolved; throttle per (rule, group key); resolved
// when the condition no longer holds (counts: the window emptied below threshold).
// Notifications leave through out (never blocking: a full out is counted, see Stats).
func NewEvaluator(opt EvalOptions, out func(Notification)) *Evaluator {
	if opt.MaxInstances <= 0 {
		opt.MaxInstances = DefaultMaxInstances
	}
	if opt.GroupWait == 0 {
		opt.GroupWait = DefaultGroupWait
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	e := &Evaluator{
		opt:       opt,
		out:       out,
		seed:      maphash.MakeSeed(),
		byMetric:  map[string][]metricRef{},
		index:     map[uint64]int32{},
		rng:       0x9E3779B97F4A7C15,
		nextSweep: noTime,
		nextFlush: noTime,
	}
	if opt.GroupWait > 0 {
		e.gw = int64(opt.GroupWait)
	}
	return e
}

// SetRules replaces the rule set. A rule whose ID and compiled form are
// unchanged keeps its instances, windows and throttle state; the instances of
// a removed or changed rule are dropped, and those notified as firing are
// sent resolved.
func (e *Evaluator) SetRules(rules []*Compiled) {
	e.mu.Lock()
	old := make(map[string]*ruleState, len(e.rules))
	for _, rs := range e.rules {
		if rs.id != "" {
			old[rs.id] = rs
		}
	}
	kept := make([]*ruleState, 0, len(rules))
	rejected := 0
	for _, c := range rules {
		if c == nil {
			continue
		}
		if o, ok := old[c.Rule.ID]; ok && reflect.DeepEqual(*o.c, *c) {
			delete(old, c.Rule.ID)
			o.c = c
			kept = append(kept, o)
			continue
		}
		rs, ok := e.compile(c)
		if !ok {
			rejected++
			continue
		}
		kept = append(kept, rs)
	}
	keep := make(map[*ruleState]bool, len(kept))
	for _, rs := range kept {
		keep[rs] = true
	}
	for _, rs := range e.rules {
		if !keep[rs] {
			e.dropRule(rs)
		}
	}
	e.rules = kept
	e.stats.RulesRejected = rejected
	e.byMetric = map[string][]metricRef{}
	for _, rs := range kept {
		for ci := range rs.conds {
			m := rs.conds[ci].metric
			refs := e.byMetric[m]
			if n := len(refs); n > 0 && refs[n-1].rs == rs {
				refs[n-1].conds = append(refs[n-1].conds, ci)
			} else {
				refs = append(refs, metricRef{rs: rs, conds: []int{ci}})
			}
			e.byMetric[m] = refs
		}
		if rs.nextSweep == 0 {
			rs.nextSweep = e.nextBoundary(rs)
		}
	}
	e.recomputeNext()
	out := e.takeQueued()
	e.mu.Unlock()
	e.emit(out)
}

func stripVar(v string) string { return strings.TrimPrefix(v, "$") }

func (e *Evaluator) compile(c *Compiled) (*ruleState, bool) {
	e.seq++
	rs := &ruleState{
		c: c, seq: e.seq, id: c.Rule.ID, name: c.Rule.Name, severity: c.Rule.Severity,
		desc: c.Rule.Description, and: !strings.EqualFold(c.Logic, "OR"),
		chans: c.Rule.Notifications, head: -1, batchDue: noTime,
	}
	if c.Logic == "" && strings.EqualFold(c.Rule.ConditionLogic, "OR") {
		rs.and = false
	}
	rs.throttle = int64(c.Throttle)
	if rs.throttle == 0 {
		rs.throttle = int64(c.Rule.ThrottleSec) * int64(time.Second)
	}
	if rs.throttle < 0 || len(c.Conds) == 0 {
		return nil, false
	}
	for _, v := range c.GroupVars {
		rs.vars = append(rs.vars, stripVar(v))
	}
	if len(rs.vars) == 0 {
		seen := map[string]bool{}
		for _, cc := range c.Conds {
			for _, v := range cc.Vars {
				if v = stripVar(v); !seen[v] {
					seen[v] = true
					rs.vars = append(rs.vars, v)
				}
			}
		}
	}
	sort.Strings(rs.vars)
	for _, cc := range c.Conds {
		if cc.Kind != Gauge && cc.Kind != Count || cc.Cmp < GT || cc.Cmp > NE || cc.Window < 0 {
			return nil, false
		}
		cs := condState{metric: cc.Metric, kind: cc.Kind, cmp: cc.Cmp, thr: cc.Threshold, win: cc.Window, bw: bucketWidth(cc.Window)}
		if cs.win <= 0 {
			cs.win = InstantWindow
		}
		for k, v := range cc.Equal {
			cs.eq = append(cs.eq, kv{k, v})
		}
		for k, v := range cc.NotEqual {
			cs.ne = append(cs.ne, kv{k, v})
		}
		sort.Slice(cs.eq, func(i, j int) bool { return cs.eq[i].k < cs.eq[j].k })
		sort.Slice(cs.ne, func(i, j int) bool { return cs.ne[i].k < cs.ne[j].k })
		cs.varLabel = make([]string, len(rs.vars))
		bound := 0
		for label, v := range cc.Vars {
			i := sort.SearchStrings(rs.vars, stripVar(v))
			if i == len(rs.vars) || rs.vars[i] != stripVar(v) {
				return nil, false
			}
			if cs.varLabel[i] == "" {
				bound++
			}
			cs.varLabel[i] = label
		}
		switch {
		case bound == 0 && len(rs.vars) > 0:
			cs.global = true
			cs.varLabel = nil
		case bound != len(rs.vars):
			return nil, false
		}
		rs.conds = append(rs.conds, cs)
	}
	own := false
	for ci := range rs.conds {
		own = own || !rs.conds[ci].global
	}
	if !own { // no instance could ever exist
		return nil, false
	}
	return rs, true
}

// dropRule frees a removed rule's instances, sending resolved for those
// notified as firing.
func (e *Evaluator) dropRule(rs *ruleState) {
	var resolved []Alert
	for _, b := range rs.batch { // resolved entries still waiting for group_wait
		if !b.dropped && !b.firing {
			resolved = append(resolved, b.alert)
		}
	}
	for idx := rs.head; idx >= 0; {
		in := &e.insts[idx]
		next := in.next
		if in.state >= stPending {
			a := e.alertOf(in, "resolved")
			e.record(a)
			if in.state == stFiring {
				resolved = append(resolved, a)
			}
		}
		in.batched = 0
		e.freeInst(idx)
		idx = next
	}
	rs.batch = nil
	rs.batchDue = noTime
	if len(resolved) > 0 {
		e.send(rs.name, rs.chans, resolved)
	}
}

// Ingest adds the signals to the windows they feed and re-evaluates the
// instances they can change, in order; from one goroutine (the evaluator's
// feeder).
func (e *Evaluator) Ingest(s []Signal) {
	e.mu.Lock()
	for i := range s {
		e.ingest(&s[i])
	}
	e.flushDue()
	out := e.takeQueued()
	e.mu.Unlock()
	e.emit(out)
}

func (e *Evaluator) setClock(at time.Time) {
	if at.IsZero() {
		at = e.opt.Now()
	}
	t := at.UnixNano()
	if !e.started || t > e.clock {
		e.clock = t
		e.started = true
	}
}

func (e *Evaluator) ingest(s *Signal) {
	e.stats.Signals++
	e.sig++
	e.setClock(s.At)
	e.touched = e.touched[:0]
	e.touchedRules = e.touchedRules[:0]
	for _, ref := range e.byMetric[s.Metric] {
		e.apply(ref, s)
	}
	if e.clock >= e.nextSweep {
		e.sweep()
	}
	for _, idx := range e.touched {
		e.evaluate(idx)
	}
	for _, rs := range e.touchedRules {
		for idx := rs.head; idx >= 0; idx = e.insts[idx].next {
			e.evaluate(idx)
		}
	}
}

func (c *condState) match(labels map[string]string) bool {
	for _, f := range c.eq {
		if v, ok := labels[f.k]; !ok || v != f.v {
			return false
		}
	}
	for _, f := range c.ne {
		if v, ok := labels[f.k]; ok && v == f.v {
			return false
		}
	}
	return true
}

// bind looks up the labels bound to the rule's variables into vals (one
// lookup each); false if one is missing.
func (c *condState) bind(labels map[string]string, vals []string) ([]string, bool) {
	vals = vals[:0]
	for _, l := range c.varLabel {
		v, ok := labels[l]
		if !ok {
			return vals, false
		}
		vals = append(vals, v)
	}
	return vals, true
}

func (w *window) add(kind MetricKind, ep int64, v float64) {
	if kind == Gauge {
		w.setGauge(ep, v)
	} else {
		w.addCount(ep, v)
	}
}

func (e *Evaluator) apply(ref metricRef, s *Signal) {
	rs := ref.rs
	for _, ci := range ref.conds {
		c := &rs.conds[ci]
		if !c.match(s.Labels) {
			continue
		}
		ep := epoch(e.clock, c.bw)
		if c.global {
			c.gwin.add(c.kind, ep, s.Value)
			if n := len(e.touchedRules); n == 0 || e.touchedRules[n-1] != rs {
				e.touchedRules = append(e.touchedRules, rs)
			}
			continue
		}
		var ok bool
		if e.vals, ok = c.bind(s.Labels, e.vals); !ok {
			continue
		}
		idx := e.instanceFor(rs, e.vals)
		if idx < 0 {
			continue
		}
		in := &e.insts[idx]
		in.win[ci].add(c.kind, ep, s.Value)
		in.fed = e.clock
		e.touched = append(e.touched, idx)
	}
}

const hashMul = 0x100000001b3

// instanceFor returns the instance of rule rs for the variables' values
// vals, creating it (-1: refused at the cap).
func (e *Evaluator) instanceFor(rs *ruleState, vals []string) int32 {
	h := rs.seq * 0x9E3779B97F4A7C15
	for _, v := range vals {
		h = (h ^ maphash.String(e.seed, v)) * hashMul
	}
	head, ok := e.index[h]
	if ok {
		for idx := head; idx >= 0; idx = e.insts[idx].nextHash {
			in := &e.insts[idx]
			if in.rule != rs || in.hash != h {
				continue
			}
			same := true
			for i, v := range vals {
				if in.vals[i] != v {
					same = false
					break
				}
			}
			if same {
				in.sig = e.sig
				return idx
			}
		}
	} else {
		head = -1
	}
	if e.live >= e.opt.MaxInstances {
		e.stats.Overflow++
		e.overflowHit()
		victim := e.victim()
		if victim < 0 {
			e.stats.Refused++
			return -1
		}
		e.stats.Evicted++
		e.freeInst(victim)
		head, ok = e.index[h]
		if !ok {
			head = -1
		}
	}
	var idx int32
	if n := len(e.free); n > 0 {
		idx = e.free[n-1]
		e.free = e.free[:n-1]
	} else {
		e.insts = append(e.insts, inst{})
		idx = int32(len(e.insts) - 1)
	}
	in := &e.insts[idx]
	win := in.win
	if cap(win) >= len(rs.conds) {
		win = win[:len(rs.conds)]
		clear(win)
	} else {
		win = make([]window, len(rs.conds))
	}
	own := append(in.vals[:0], vals...)
	var key strings.Builder
	for i, v := range vals {
		if i > 0 {
			key.WriteByte(',')
		}
		key.WriteString(rs.vars[i])
		key.WriteByte('=')
		key.WriteString(v)
	}
	*in = inst{
		rule: rs, hash: h, nextHash: head, prev: -1, next: rs.head, vals: own,
		key: key.String(), win: win, state: stInactive, lastNotify: never, sig: e.sig,
	}
	if rs.head >= 0 {
		e.insts[rs.head].prev = idx
	}
	rs.head = idx
	e.index[h] = idx
	e.live++
	return idx
}

// victim draws evictSample instances and returns the least recently fed one
// that is inactive and was not fed by the current signal, or -1.
func (e *Evaluator) victim() int32 {
	best := int32(-1)
	for range evictSample {
		e.rng ^= e.rng << 13
		e.rng ^= e.rng >> 7
		e.rng ^= e.rng << 17
		idx := int32(e.rng % uint64(len(e.insts)))
		in := &e.insts[idx]
		if in.state != stInactive || in.batched != 0 || in.sig == e.sig {
			continue
		}
		if best < 0 || in.fed < e.insts[best].fed {
			best = idx
		}
	}
	return best
}

func (e *Evaluator) freeInst(idx int32) {
	in := &e.insts[idx]
	rs := in.rule
	if in.prev >= 0 {
		e.insts[in.prev].next = in.next
	} else {
		rs.head = in.next
	}
	if in.next >= 0 {
		e.insts[in.next].prev = in.prev
	}
	if head := e.index[in.hash]; head == idx {
		if in.nextHash >= 0 {
			e.index[in.hash] = in.nextHash
		} else {
			delete(e.index, in.hash)
		}
	} else {
		for p := head; p >= 0; p = e.insts[p].nextHash {
			if e.insts[p].nextHash == idx {
				e.insts[p].nextHash = in.nextHash
				break
			}
		}
	}
	win, vals := in.win, in.vals
	clear(vals)
	*in = inst{win: win[:0], vals: vals[:0], state: stFree}
	e.free = append(e.free, idx)
	e.live--
}

// holds reports whether the instance's rule holds at the clock. An instance
// exists only while one of its own windows holds a signal, also for a rule
// that a shared (global) condition alone could satisfy.
func (e *Evaluator) holds(in *inst) bool {
	rs := in.rule
	if !e.anyLive(in) {
		return false
	}
	for ci := range rs.conds {
		c := &rs.conds[ci]
		w := &c.gwin
		if !c.global {
			w = &in.win[ci]
		}
		ep := epoch(e.clock, c.bw)
		ok := w.live(ep) && c.cmp.Compare(w.value(c.kind, ep), c.thr)
		if rs.and && !ok {
			return false
		}
		if !rs.and && ok {
			return true
		}
	}
	return rs.and
}

func (e *Evaluator) evaluate(idx int32) {
	in := &e.insts[idx]
	if in.state == stFree {
		return
	}
	h := e.holds(in)
	switch {
	case h && in.state == stInactive:
		e.fire(idx)
	case !h && in.state >= stPending:
		e.resolve(idx)
	}
}

func (e *Evaluator) fire(idx int32) {
	in := &e.insts[idx]
	rs := in.rule
	in.state = stPending
	in.startsAt = e.clock
	a := e.alertOf(in, "firing")
	e.record(a)
	if rs.throttle == 0 || in.lastNotify == never || e.clock >= in.lastNotify+rs.throttle {
		e.enqueue(idx, a)
		return
	}
	e.stats.Throttled++
	in.due = in.lastNotify + rs.throttle
	e.schedule(rs, in.due)
}

func (e *Evaluator) resolve(idx int32) {
	in := &e.insts[idx]
	rs := in.rule
	if in.batched > 0 {
		rs.batch[in.batched-1].dropped = true
		in.batched = 0
	}
	wasFiring := in.state == stFiring
	in.state = stInactive
	in.due = 0
	a := e.alertOf(in, "resolved")
	e.record(a)
	if wasFiring {
		e.addBatch(rs, batchEntry{idx: -1, alert: a})
	}
}

func (e *Evaluator) enqueue(idx int32, a Alert) {
	in := &e.insts[idx]
	e.addBatch(in.rule, batchEntry{idx: idx, firing: true, alert: a})
	in.batched = int32(len(in.rule.batch))
}

func (e *Evaluator) addBatch(rs *ruleState, b batchEntry) {
	rs.batch = append(rs.batch, b)
	if rs.batchDue == noTime {
		rs.batchDue = e.clock + e.gw
		if rs.batchDue < e.nextFlush {
			e.nextFlush = rs.batchDue
		}
	}
}

func (e *Evaluator) schedule(rs *ruleState, t int64) {
	if t < rs.nextSweep {
		rs.nextSweep = t
	}
	if t < e.nextSweep {
		e.nextSweep = t
	}
}

func (e *Evaluator) nextBoundary(rs *ruleState) int64 {
	next := int64(noTime)
	for ci := range rs.conds {
		bw := rs.conds[ci].bw
		if b := (epoch(e.clock, bw) + 1) * bw; b < next {
			next = b
		}
	}
	return next
}

func (e *Evaluator) recomputeNext() {
	e.nextSweep, e.nextFlush = noTime, noTime
	for _, rs := range e.rules {
		e.nextSweep = min(e.nextSweep, rs.nextSweep)
		e.nextFlush = min(e.nextFlush, rs.batchDue)
	}
}

// sweep re-evaluates the rules whose windows crossed a bucket boundary or
// that have a notification due, and frees idle instances.
func (e *Evaluator) sweep() {
	next := int64(noTime)
	for _, rs := range e.rules {
		if e.clock >= rs.nextSweep {
			e.sweepRule(rs)
		}
		next = min(next, rs.nextSweep)
	}
	e.nextSweep = next
}

func (e *Evaluator) sweepRule(rs *ruleState) {
	next := e.nextBoundary(rs)
	for idx := rs.head; idx >= 0; {
		in := &e.insts[idx]
		nxt := in.next
		e.evaluate(idx)
		if in.state >= stPending && in.due != 0 && in.batched == 0 {
			if e.clock >= in.due {
				in.due = 0
				e.enqueue(idx, e.alertOf(in, "firing"))
			} else {
				next = min(next, in.due)
			}
		}
		if in.state == stInactive && in.batched == 0 &&
			(in.lastNotify == never || e.clock >= in.lastNotify+rs.throttle) && !e.anyLive(in) {
			e.freeInst(idx)
		}
		idx = nxt
	}
	rs.nextSweep = next
}

func (e *Evaluator) anyLive(in *inst) bool {
	rs := in.rule
	for ci := range rs.conds {
		c := &rs.conds[ci]
		if !c.global && in.win[ci].live(epoch(e.clock, c.bw)) {
			return true
		}
	}
	return false
}

// flushDue sends the batches whose group_wait ended.
func (e *Evaluator) flushDue() {
	if e.clock < e.nextFlush {
		return
	}
	next := int64(noTime)
	for _, rs := range e.rules {
		if rs.batchDue != noTime && e.clock >= rs.batchDue {
			e.flush(rs)
		}
		next = min(next, rs.batchDue)
	}
	e.nextFlush = next
}

func (e *Evaluator) flush(rs *ruleState) {
	alerts := make([]Alert, 0, len(rs.batch))
	for i := range rs.batch {
		b := &rs.batch[i]
		if b.dropped {
			continue
		}
		if b.firing {
			in := &e.insts[b.idx]
			in.batched = 0
			in.state = stFiring
			in.lastNotify = e.clock
			if rs.throttle > 0 {
				in.due = e.clock + rs.throttle
				e.schedule(rs, in.due)
			}
		}
		alerts = append(alerts, b.alert)
	}
	clear(rs.batch)
	rs.batch = rs.batch[:0]
	rs.batchDue = noTime
	if len(alerts) > 0 {
		e.send(rs.name, rs.chans, alerts)
	}
}

func (e *Evaluator) send(rule string, chans []Channel, alerts []Alert) {
	if len(chans) == 0 {
		chans = e.opt.DefaultChannels
	}
	if len(chans) == 0 {
		e.stats.Unrouted += uint64(len(alerts))
		return
	}
	for _, ch := range chans {
		if e.out == nil {
			e.stats.Dropped++
			continue
		}
		e.stats.Sent++
		e.queued = append(e.queued, Notification{Channel: ch, Rule: rule, Alerts: alerts})
	}
}

func (e *Evaluator) takeQueued() []Notification {
	q := e.queued
	e.queued = nil
	return q
}

func (e *Evaluator) emit(q []Notification) {
	for _, n := range q {
		e.out(n)
	}
}

// Tick advances the clock to now (on the signals' clock): windows slide,
// instances whose rule no longer holds resolve, held and reminder
// notifications and ended group_wait batches leave, the overflow alert
// resolves once below 90 % of the cap.
func (e *Evaluator) Tick(now time.Time) {
	e.mu.Lock()
	e.setClock(now)
	if e.clock >= e.nextSweep {
		e.sweep()
	}
	if e.ovFiring && e.live < e.opt.MaxInstances*9/10 {
		e.ovFiring = false
		a := e.overflowAlert("resolved")
		e.record(a)
		e.send(OverflowRule, nil, []Alert{a})
	}
	e.flushDue()
	out := e.takeQueued()
	e.mu.Unlock()
	e.emit(out)
}

// Uses reports whether a rule in force has a condition on metric (its
// feeder may skip the signals of metrics no rule uses).
func (e *Evaluator) Uses(metric string) bool {
	e.mu.Lock()
	_, ok := e.byMetric[metric]
	e.mu.Unlock()
	return ok
}

// Next is the earliest time at which a Tick has work (a window boundary, a
// held notification, a group_wait flush); the feeder arms its timer with it.
func (e *Evaluator) Next() time.Time {
	e.mu.Lock()
	t := min(e.nextSweep, e.nextFlush)
	e.mu.Unlock()
	if t == noTime {
		return time.Time{}
	}
	return time.Unix(0, t).UTC()
}

func (e *Evaluator) overflowHit() {
	if e.ovFiring {
		return
	}
	e.ovFiring = true
	e.ovStart = e.clock
	a := e.overflowAlert("firing")
	e.record(a)
	e.send(OverflowRule, nil, []Alert{a})
}

func (e *Evaluator) overflowAlert(status string) Alert {
	if e.ovLabels == nil {
		e.ovLabels = map[string]string{"alertname": OverflowRule, "severity": "warning"}
	}
	a := Alert{
		Rule: OverflowRule, Severity: "warning", Labels: e.ovLabels,
		Annotations: map[string]string{
			"summary":     "alerting: " + strconv.Itoa(e.opt.MaxInstances) + " (rule, group key) instances: new group keys evict idle ones or are refused",
			"description": "the evaluator's instance cap (MaxInstances) is reached",
		},
		Values:      map[string]float64{"instances": float64(e.live), "max_instances": float64(e.opt.MaxInstances)},
		StartsAt:    time.Unix(0, e.ovStart).UTC(),
		Status:      status,
		Fingerprint: fingerprint(e.ovLabels),
	}
	if status == "resolved" {
		a.EndsAt = time.Unix(0, e.clock).UTC()
	}
	return a
}

// alertOf is the instance's alert now, with the values of its live windows.
func (e *Evaluator) alertOf(in *inst, status string) Alert {
	rs := in.rule
	if in.labels == nil {
		in.labels = make(map[string]string, 2+len(rs.vars))
		in.labels["alertname"] = rs.name
		if rs.severity != "" {
			in.labels["severity"] = rs.severity
		}
		for i, v := range rs.vars {
			in.labels[v] = in.vals[i]
		}
		in.fp = fingerprint(in.labels)
	}
	values := make(map[string]float64, len(rs.conds))
	var sum strings.Builder
	sum.WriteString(rs.name)
	if in.key != "" {
		sum.WriteString(" for ")
		sum.WriteString(in.key)
	}
	sum.WriteString(":")
	for ci := range rs.conds {
		c := &rs.conds[ci]
		w := &c.gwin
		if !c.global {
			w = &in.win[ci]
		}
		if ci > 0 {
			if rs.and {
				sum.WriteString(" AND")
			} else {
				sum.WriteString(" OR")
			}
		}
		sum.WriteString(" " + c.metric + "=")
		ep := epoch(e.clock, c.bw)
		if w.live(ep) {
			v := w.value(c.kind, ep)
			name := c.metric
			if _, dup := values[name]; dup {
				name += "[" + strconv.Itoa(ci) + "]"
			}
			values[name] = v
			sum.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
		} else {
			sum.WriteString("none")
		}
		sum.WriteString(" (" + cmpNames[c.cmp] + " " + strconv.FormatFloat(c.thr, 'g', -1, 64) + " over " + c.win.String() + ")")
	}
	a := Alert{
		Rule: rs.name, RuleID: rs.id, Severity: rs.severity, GroupKey: in.key, Labels: in.labels,
		Annotations: map[string]string{"summary": sum.String()},
		Values:      values,
		StartsAt:    time.Unix(0, in.startsAt).UTC(),
		Status:      status,
		Fingerprint: in.fp,
	}
	if rs.desc != "" {
		a.Annotations["description"] = rs.desc
	}
	if status == "resolved" {
		a.EndsAt = time.Unix(0, e.clock).UTC()
	}
	return a
}

var cmpNames = [...]string{GT: "gt", GTE: "gte", LT: "lt", LTE: "lte", EQ: "eq", NE: "ne"}

// fingerprint is Prometheus' label-set signature: FNV-1a 64 over the sorted
// label names and values, each followed by 0xff, in hex.
func fingerprint(labels map[string]string) string {
	names := make([]string, 0, len(labels))
	for k := range labels {
		names = append(names, k)
	}
	sort.Strings(names)
	h := uint64(14695981039346656037)
	add := func(s string) {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= 1099511628211
		}
		h ^= 0xff
		h *= 1099511628211
	}
	for _, k := range names {
		add(k)
		add(labels[k])
	}
	s := strconv.FormatUint(h, 16)
	return strings.Repeat("0", 16-len(s)) + s
}

func (e *Evaluator) record(a Alert) {
	if len(e.hist) < HistorySize {
		e.hist = append(e.hist, a)
		return
	}
	e.hist[e.histHead] = a
	e.histHead = (e.histHead + 1) % HistorySize
	e.stats.HistoryDropped++
}

// Active returns the instances whose rule holds (pending and firing), and the
// overflow alert while it fires, oldest first.
func (e *Evaluator) Active() []Alert {
	e.mu.Lock()
	var out []Alert
	for i := range e.insts {
		if e.insts[i].state >= stPending {
			out = append(out, e.alertOf(&e.insts[i], "firing"))
		}
	}
	if e.ovFiring {
		out = append(out, e.overflowAlert("firing"))
	}
	e.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].StartsAt.Equal(out[j].StartsAt) {
			return out[i].StartsAt.Before(out[j].StartsAt)
		}
		return out[i].Fingerprint < out[j].Fingerprint
	})
	return out
}

// History returns the state changes (firing: at StartsAt, resolved: at
// EndsAt) in [start, end], in the order they happened; a zero start or end is
// unbounded. It keeps the last HistorySize changes (until the store exists).
func (e *Evaluator) History(start, end time.Time) []Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Alert
	n := len(e.hist)
	for i := range n {
		a := e.hist[(e.histHead+i)%n]
		t := a.StartsAt
		if a.Status == "resolved" {
			t = a.EndsAt
		}
		if (!start.IsZero() && t.Before(start)) || (!end.IsZero() && t.After(end)) {
			continue
		}
		out = append(out, a)
	}
	return out
}

// Stats returns the evaluator's counters.
func (e *Evaluator) Stats() EvalStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	s.Rules = len(e.rules)
	s.Instances = e.live
	s.OverflowFiring = e.ovFiring
	for i := range e.insts {
		switch e.insts[i].state {
		case stPending:
			s.Pending++
		case stFiring:
			s.Firing++
		}
	}
	return s
}
