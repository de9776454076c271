package flowtable

import (
	"bytes"
	"cmp"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"time"

	"github.com/netsentry/netsentry/decode"
)

// processScanSeed is the hash seed of every tracker whose ScanConfig.Seed is
// zero: one per process, so that the shards of a sensor merge.
var processScanSeed = rand.Uint64() | 1

// ProcessScanSeed returns the scan trackers' hash seed for this process (the
// one a zero ScanConfig.Seed takes). It is random per process and never zero.
func ProcessScanSeed() uint64 { return processScanSeed }

func (c ScanConfig) seed() uint64 {
	if c.Seed != 0 {
		return c.Seed
	}
	return processScanSeed
}

// SourceWindow is one source's scan window as one tracker saw it, exported
// (ScanTracker.Export, Shard.ScanExport) so that the windows of the same
// source in several trackers can be merged (MergeSources). Live capture fans
// connections out to shards by a symmetric 5-tuple hash, so a scanning
// source's connections are spread over every shard: distinct counts cannot
// be summed, the sets behind them are united instead.
//
// Stats holds this tracker's counts alone. The distinct values behind them
// stay unexported: per kind (ports, hosts), the exact values in the window
// while the tracker counts that kind exactly, else its HyperLogLog registers
// merged over the window. They are hashed with the tracker's seed: windows
// merge only with windows of trackers that share it (ScanConfig.Seed).
// A SourceWindow is a copy; it holds nothing of the tracker.
type SourceWindow struct {
	Stats SourceStats

	seed   uint64
	exact  int      // the tracker's ExactPorts
	ports  []uint32 // exact (protocol<<16 | port) values, when portSk is nil
	hosts  []uint64 // exact host hashes (low byte zero), when hostSk is nil
	portSk *hllRegs // the ports' sketch merged over the window, or nil
	hostSk *hllRegs
}

// Window returns the sliding window the tracker counts over.
func (t *ScanTracker) Window() time.Duration { return t.cfg.Window }

// Export appends to dst the window state of every source that Snapshot(now)
// reports, with the same counts in Stats, and returns the extended slice.
// It runs between batches, on the tracker's goroutine; it allocates, at most
// the sources' exact entries (2 × ExactPorts values each) and 512 bytes per
// approximate kind, in a few arrays.
func (t *ScanTracker) Export(now int64, dst []SourceWindow) []SourceWindow {
	stats := t.Snapshot(now, make([]SourceStats, 0, t.live))
	if len(stats) == 0 {
		return dst
	}
	e := floorDiv(now, t.bw)
	e8 := uint8(e)
	slots := make([]uint32, len(stats))
	var nPorts, nHosts, nSketch int
	for j := range stats {
		i, ok := t.find(&stats[j].Addr, stats[j].IPVersion)
		if !ok {
			panic("BUG: scan snapshot reports a source the index lacks")
		}
		slots[j] = i
		s := t.at(i)
		nPorts += int(s.n[kindPorts])
		nHosts += int(s.n[kindHosts])
		for _, n := range s.sketch {
			if n != 0 {
				nSketch++
			}
		}
	}
	ports := make([]uint32, 0, nPorts)
	hosts := make([]uint64, 0, nHosts)
	sketches := make([]hllRegs, nSketch)
	dst = slices.Grow(dst, len(stats))
	for j, i := range slots {
		s := t.at(i)
		c := &t.chunks[i>>scanChunkBits]
		off := int(i&scanChunkMask) * t.cfg.ExactPorts
		w := SourceWindow{Stats: stats[j], seed: t.seed, exact: t.cfg.ExactPorts}
		if n := s.sketch[kindPorts]; n != 0 {
			w.portSk, sketches = &sketches[0], sketches[1:]
			t.windowSketch(s, n-1, e, w.portSk)
		} else {
			start := len(ports)
			for _, ent := range c.ports[off : off+int(s.n[kindPorts])] {
				if e8-uint8(ent) <= scanBuckets {
					ports = append(ports, ent>>8)
				}
			}
			w.ports = ports[start:len(ports):len(ports)]
		}
		if n := s.sketch[kindHosts]; n != 0 {
			w.hostSk, sketches = &sketches[0], sketches[1:]
			t.windowSketch(s, n-1, e, w.hostSk)
		} else {
			start := len(hosts)
			for _, ent := range c.hosts[off : off+int(s.n[kindHosts])] {
				if e8-uint8(ent) <= scanBuckets {
					hosts = append(hosts, ent&^0xff)
				}
			}
			w.hosts = hosts[start:len(hosts):len(hosts)]
		}
		dst = append(dst, w)
	}
	return dst
}

// windowSketch sets r to the union of sketch set n's slots inside the window
// ending at bucket e, as distinct merges them.
func (t *ScanTracker) windowSketch(s *scanSource, n uint32, e int64, r *hllRegs) {
	sk := t.sketch(n)
	r.reset()
	for k, ep := range s.epochs {
		if ep <= e && ep >= e-scanBuckets {
			r.merge(&sk[k])
		}
	}
}

// find returns the slot of (src, v), if it is tracked.
func (t *ScanTracker) find(src *decode.Addr, v uint8) (uint32, bool) {
	h := uint32(t.addrHash(src, v) >> 32)
	for p := h & t.mask; ; p = (p + 1) & t.mask {
		x := t.index[p]
		if x == 0 {
			return 0, false
		}
		if j := uint32(x); uint32(x>>32) == h {
			if s := t.at(j - 1); s.v == v && s.addr == *src {
				return j - 1, true
			}
		}
	}
}

// ScanExport appends the window state of every source in the scan window
// ending at the shard's clock to dst, for MergeSources.
func (s *Shard) ScanExport(dst []SourceWindow) []SourceWindow { return s.scan.Export(s.now, dst) }

// ScanWindow returns the sliding window of the shard's scan signals.
func (s *Shard) ScanWindow() time.Duration { return s.scan.Window() }

// MergeSources unites the windows of several trackers (one slice per
// tracker, all sharing a hash seed) into one SourceStats per (address, IP
// version), ordered by IP version, then address. Per source:
//
//   - Connections, and every other integer field of SourceStats (whatever
//     counters it gains), are summed; other boolean fields are ORed.
//   - DistinctPorts and DistinctHosts come from the union of the sets: the
//     union of exact sets stays exact while it holds at most ExactPorts
//     values, as one tracker fed every connection would; a larger union, or
//     one with a sketch in it, is a HyperLogLog union (registers' maximum,
//     exact values added by their hash), as accurate as one sketch
//     (relative standard error 4.6 %). Approximate says so.
//
// A source in a single window keeps that window's Stats. MergeSources
// allocates; it never modifies its arguments. Windows of trackers with
// different seeds cannot be merged: that is a bug, and it panics.
func MergeSources(parts ...[]SourceWindow) []SourceStats {
	n, nonEmpty := 0, 0
	for _, p := range parts {
		n += len(p)
		if len(p) > 0 {
			nonEmpty++
		}
	}
	out := make([]SourceStats, 0, n)
	if nonEmpty <= 1 { // one tracker: its counts are the answer
		for _, p := range parts {
			for i := range p {
				out = append(out, p[i].Stats)
			}
		}
		slices.SortFunc(out, func(a, b SourceStats) int { return compareSource(&a, &b) })
		return out
	}
	all := make([]*SourceWindow, 0, n)
	var seed uint64
	for _, p := range parts {
		for i := range p {
			w := &p[i]
			if seed == 0 {
				seed = w.seed
			} else if w.seed != seed && w.seed != 0 {
				panic("BUG: merging scan windows of trackers with different hash seeds")
			}
			all = append(all, w)
		}
	}
	// Sorted by source, a source's windows are neighbours.
	slices.SortFunc(all, func(a, b *SourceWindow) int { return compareSource(&a.Stats, &b.Stats) })
	var sc mergeScratch
	for len(all) > 0 {
		j := 1
		for j < len(all) && compareSource(&all[0].Stats, &all[j].Stats) == 0 {
			j++
		}
		out = append(out, sc.merge(all[:j]))
		all = all[j:]
	}
	return out
}

// compareSource orders sources by IP version, then address.
func compareSource(a, b *SourceStats) int {
	if c := cmp.Compare(a.IPVersion, b.IPVersion); c != 0 {
		return c
	}
	return bytes.Compare(a.Addr[:], b.Addr[:])
}

// mergeScratch holds the buffers MergeSources reuses from source to source.
type mergeScratch struct {
	vals, all []uint64
	regs      hllRegs
}

func (sc *mergeScratch) merge(ws []*SourceWindow) SourceStats {
	st := ws[0].Stats
	if len(ws) == 1 {
		return st
	}
	exact := 0
	for _, w := range ws {
		exact = max(exact, w.exact)
	}
	for _, w := range ws[1:] {
		addCounters(&st, &w.Stats)
	}
	seed := ws[0].seed
	var ap, ah bool
	st.DistinctPorts, ap = sc.union(ws, exact, func(w *SourceWindow) (*hllRegs, []uint64) {
		vals := sc.vals[:0]
		for _, p := range w.ports {
			vals = append(vals, uint64(p))
		}
		sc.vals = vals
		return w.portSk, vals
	}, func(v uint64) uint64 { return scanPortHash(seed, uint32(v)) })
	st.DistinctHosts, ah = sc.union(ws, exact, func(w *SourceWindow) (*hllRegs, []uint64) {
		return w.hostSk, w.hosts
	}, func(v uint64) uint64 { return v })
	st.Approximate = ap || ah
	return st
}

// union counts the distinct values of one kind over ws: exactly while every
// window is exact and the union holds at most exact values, else as the
// estimate of the union of sketches (exact values added through hash).
func (sc *mergeScratch) union(ws []*SourceWindow, exact int, get func(*SourceWindow) (*hllRegs, []uint64),
	hash func(uint64) uint64) (uint64, bool) {
	all := sc.all[:0]
	sketched := false
	for _, w := range ws {
		sk, vals := get(w)
		if sk != nil {
			sketched = true
			continue
		}
		all = append(all, vals...)
	}
	sc.all = all // keep the grown buffer for the next source
	if !sketched {
		slices.Sort(all)
		all = slices.Compact(all)
		if len(all) <= exact {
			return uint64(len(all)), false
		}
	}
	sc.regs.reset()
	for _, w := range ws {
		if sk, _ := get(w); sk != nil {
			sc.regs.merge(sk)
		}
	}
	for _, v := range all {
		sc.regs.add(hash(v))
	}
	return uint64(math.Round(sc.regs.estimate())), true
}

// scanPortHash is ScanTracker.portHash for a given seed.
func scanPortHash(seed uint64, p uint32) uint64 { return fmix64(uint64(p) ^ seed ^ hashM1) }

// sourceStatsSkip are the SourceStats fields MergeSources does not add: the
// key and the distinct counts it computes.
var sourceStatsSkip = map[string]bool{
	"Addr": true, "IPVersion": true, "DistinctPorts": true, "DistinctHosts": true, "Approximate": true,
}

// addCounters adds src's counters to dst: every exported field but the
// skipped ones, integers (and floats) summed, booleans ORed, arrays and
// structs field by field. Reflection keeps it true for counters added to
// SourceStats later; it runs per merged source, between batches, never per
// packet.
func addCounters(dst, src *SourceStats) {
	d, s := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src).Elem()
	for _, i := range sourceStatsSums {
		addValue(d.Field(i), s.Field(i))
	}
}

// sourceStatsSums are the indices of the fields addCounters adds.
var sourceStatsSums = func() []int {
	var idx []int
	ty := reflect.TypeFor[SourceStats]()
	for i := range ty.NumField() {
		if f := ty.Field(i); f.IsExported() && !sourceStatsSkip[f.Name] {
			idx = append(idx, i)
		}
	}
	return idx
}()

func addValue(d, s reflect.Value) {
	switch d.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		d.SetUint(d.Uint() + s.Uint())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		d.SetInt(d.Int() + s.Int())
	case reflect.Float32, reflect.Float64:
		d.SetFloat(d.Float() + s.Float())
	case reflect.Bool:
		d.SetBool(d.Bool() || s.Bool())
	case reflect.Array:
		for i := range d.Len() {
			addValue(d.Index(i), s.Index(i))
		}
	case reflect.Struct:
		for i := range d.NumField() {
			if d.Type().Field(i).IsExported() {
				addValue(d.Field(i), s.Field(i))
			}
		}
	}
}
