package flowtable

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/netsentry/netsentry/decode"
)

// TestHLLError measures the sketch's relative error against the true number
// of distinct values added, over 200 independent hash seeds per size, for
// sequential inputs (ports 0, 1, 2...) and random 64-bit ones. The stated
// standard error is 1.04/sqrt(512) ≈ 4.6 %: the RMS error must not exceed it
// by more than the sampling noise of 200 trials (±5 %) allows, the bias must
// stay below a third of it (4000 trials put it near +0.2 %), at most 2 % of estimates may fall beyond 3 standard
// errors (±13.8 %; a normal error puts 0.3 % there) and none beyond 5.
func TestHLLError(t *testing.T) {
	const trials = 200
	rng := rand.New(rand.NewPCG(1, 2))
	inputs := []struct {
		name  string
		value func(seed uint64, i int) uint64
	}{
		{"sequential", func(seed uint64, i int) uint64 { return fmix64(uint64(i) ^ seed) }},
		{"random", func(uint64, int) uint64 { return fmix64(rng.Uint64()) }},
		{"ipv4", func(seed uint64, i int) uint64 { // the scan tracker's host hash
			var a decode.Addr
			binary.BigEndian.PutUint32(a[:], 0x0a000000+uint32(i))
			return (&ScanTracker{seed: seed}).addrHash(&a, 4)
		}},
	}
	for _, in := range inputs {
		for _, n := range []int{1, 10, 100, 1000, 5000, 50000, 200000} {
			var sum, sumSq, worst float64
			beyond3 := 0
			for range trials {
				seed := rng.Uint64()
				var r hllRegs
				for i := range n {
					r.add(in.value(seed, i))
				}
				est := r.estimate()
				rel := (est - float64(n)) / float64(n)
				sum += rel
				sumSq += rel * rel
				worst = max(worst, math.Abs(rel))
				if math.Abs(rel) > 3*hllStdErr {
					beyond3++
				}
				if math.Abs(rel) > 5*hllStdErr {
					t.Errorf("%s n=%d: estimate %.0f, relative error %.3f beyond 5 standard errors",
						in.name, n, est, rel)
				}
			}
			bias, rms := sum/trials, math.Sqrt(sumSq/trials)
			t.Logf("%-10s n=%-6d bias %+.4f  rms %.4f  worst %.4f  beyond 3σ %d/%d  (standard error %.4f)",
				in.name, n, bias, rms, worst, beyond3, trials, hllStdErr)
			if rms > 1.15*hllStdErr {
				t.Errorf("%s n=%d: rms error %.4f above the stated %.4f", in.name, n, rms, hllStdErr)
			}
			if math.Abs(bias) > hllStdErr/3 {
				t.Errorf("%s n=%d: bias %+.4f", in.name, n, bias)
			}
			if beyond3 > trials/50 {
				t.Errorf("%s n=%d: %d of %d estimates beyond 3 standard errors", in.name, n, beyond3, trials)
			}
		}
	}
}

func TestHLLSmallCountsExact(t *testing.T) {
	var r hllRegs
	if got := r.estimate(); got != 0 {
		t.Fatalf("empty sketch estimates %v, want 0", got)
	}
	for n := 1; n <= 20; n++ {
		r.add(fmix64(uint64(n) ^ 0x5eed))
		if got := math.Round(r.estimate()); got != float64(n) {
			t.Errorf("after %d distinct values the estimate rounds to %v", n, got)
		}
	}
	r.add(fmix64(1 ^ 0x5eed)) // a repeat changes nothing
	if got := math.Round(r.estimate()); got != 20 {
		t.Errorf("a repeated value moved the estimate to %v", got)
	}
}

// TestHLLMerge checks that merging is the union: the merge of two sketches is
// register for register the sketch of all values, and disjoint halves add up.
func TestHLLMerge(t *testing.T) {
	var a, b, all hllRegs
	for i := range 30000 {
		h := fmix64(uint64(i) ^ 77)
		all.add(h)
		if i%3 == 0 {
			a.add(h)
		} else {
			b.add(h)
		}
	}
	a.merge(&b)
	if a != all {
		t.Fatal("merged sketch differs from the sketch of the union")
	}
	if rel := math.Abs(a.estimate()-30000) / 30000; rel > 3*hllStdErr {
		t.Errorf("union estimate %.0f, relative error %.3f", a.estimate(), rel)
	}
	a.reset()
	if a != (hllRegs{}) {
		t.Error("reset left registers set")
	}
}

// TestHLLRank checks the register update on hand-made hashes: the top hllP
// bits pick the register, the rest give 1 + their leading zeros.
func TestHLLRank(t *testing.T) {
	cases := []struct {
		h        uint64
		reg      int
		wantRank uint8
	}{
		{1 << 63, 256, hllQ + 1},                    // register 256, remainder all zero
		{1<<63 | 1<<(hllQ-1), 256, 1},               // remainder starts with a one
		{5<<hllQ | 1<<(hllQ-4), 5, 4},               // three zeros, then a one
		{(hllM-1)<<hllQ | 1, hllM - 1, hllQ},        // same, written plainly
		{0, 0, hllQ + 1},                            // all zero
		{1<<(hllQ-1) | 1<<(hllQ-2), 0, 1},           // leading one in the remainder
		{uint64(3)<<hllQ | 1<<(hllQ-10), 3, 10},     // nine zeros
		{uint64(300)<<hllQ | 1<<(hllQ-20), 300, 20}, // nineteen zeros
	}
	for _, c := range cases {
		var r hllRegs
		r.add(c.h)
		if r[c.reg] != c.wantRank {
			t.Errorf("hash %#x: register %d = %d, want %d", c.h, c.reg, r[c.reg], c.wantRank)
		}
		r[c.reg] = 0
		if r != (hllRegs{}) {
			t.Errorf("hash %#x touched another register", c.h)
		}
	}
}

func BenchmarkHLLAdd(b *testing.B) {
	b.ReportAllocs()
	var r hllRegs
	for i := range b.N {
		r.add(fmix64(uint64(i)))
	}
}

func BenchmarkHLLEstimate(b *testing.B) {
	b.ReportAllocs()
	var r hllRegs
	for i := range 10000 {
		r.add(fmix64(uint64(i)))
	}
	for b.Loop() {
		_ = r.estimate()
	}
}
