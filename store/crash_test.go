package store

import (
	"bufio"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// The crash test's child appends ticks to a store on a real directory as
// fast as it can (so Append shares WAL syncs, see Append) and, every
// crashReadEvery ticks, reads the latest tick back with a query and writes
// its number to stdout once the query returned it; the parent SIGKILLs it at
// random moments and checks, after every reopen, that every reported tick
// (and so every tick before it) is there with the right values (the value
// function below is the oracle), and that no more than crashReadEvery ticks
// past the last reported one were kept or lost.
const crashEnv = "NETSENTRY_STORE_CRASH_DIR"

const crashInterval = 10 * time.Second

// crashReadEvery: the child queries (and reports) every this many ticks.
const crashReadEvery = 3

// crashSamples are the samples of tick k: 20 base series, each missing one
// tick in seven, and one churning series per 100 ticks.
func crashSamples(k int64, dst []Sample) []Sample {
	dst = dst[:0]
	for i := int64(0); i < 20; i++ {
		if (k+i)%7 == 0 {
			continue
		}
		dst = append(dst, Sample{Name: "crash_base", Labels: []Label{{"i", strconv.FormatInt(i, 10)}}, Value: crashValue(i, k)})
	}
	dst = append(dst, Sample{Name: "crash_churn", Labels: []Label{{"c", strconv.FormatInt(k/100, 10)}}, Value: float64(k)})
	return dst
}

func crashValue(i, k int64) float64 {
	switch i % 3 {
	case 0: // arbitrary bits, NaNs with payloads included
		x := uint64(i)<<40 ^ uint64(k)*0x9e3779b97f4a7c15
		x ^= x >> 31
		x *= 0xbf58476d1ce4e5b9
		return math.Float64frombits(x ^ x>>29)
	case 1:
		return float64(k * (i + 1))
	}
	return float64(k%13) / 4
}

func crashChild(dir string) {
	s, err := Open(dir, Options{Interval: crashInterval})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	k := int64(0)
	if s.lastT != math.MinInt64 {
		k = (s.lastT-t0.UnixMilli())/crashInterval.Milliseconds() + 1
	}
	out := bufio.NewWriterSize(os.Stdout, 64)
	var smp []Sample
	for ; ; k++ {
		smp = crashSamples(k, smp)
		if err := s.Append(t0.Add(time.Duration(k)*crashInterval), smp); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		if k%crashReadEvery != 0 {
			continue
		}
		at := t0.Add(time.Duration(k) * crashInterval).UnixMilli()
		ss, err := s.Select([]Matcher{{MatchEqual, MetricName, "crash_churn"}}, at, at)
		var pts []Point
		for _, si := range ss {
			if err == nil {
				pts, err = s.Points(si.Ref, at, at, pts)
			}
		}
		if err != nil || len(pts) != 1 || pts[0].V != float64(k) {
			fmt.Fprintln(os.Stderr, "read back tick", k, err, pts)
			os.Exit(4)
		}
		fmt.Fprintf(out, "%d\n", k)
		out.Flush()
	}
}

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

func TestCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(11, 12))
	acked := int64(-1) // highest tick a query returned; every tick up to it was
	const kills = 12
	for round := 0; round < kills; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan int64, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				k, err := strconv.ParseInt(sc.Text(), 10, 64)
				if err == nil {
					lines <- k
				}
			}
			close(lines)
		}()
		// Wait for the first tick, then kill at a random moment.
		first, ok := <-lines
		if !ok {
			cmd.Wait()
			t.Fatalf("round %d: child reported nothing", round)
		}
		if first <= acked || first > acked+crashReadEvery {
			t.Fatalf("round %d: child resumed at tick %d, last reported %d", round, first, acked)
		}
		acked = first
		time.Sleep(time.Duration(50+r.IntN(1200)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for k := range lines {
			if k <= acked || k > acked+crashReadEvery {
				t.Fatalf("round %d: tick %d reported after %d", round, k, acked)
			}
			acked = k
		}
		cmd.Wait()

		s, err := Open(dir, Options{Interval: crashInterval})
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		if s.Recovered() == "" {
			t.Errorf("round %d: Recovered() is empty after a kill", round)
		}
		last := (s.lastT - t0.UnixMilli()) / crashInterval.Milliseconds()
		if last < acked || last > acked+crashReadEvery {
			t.Fatalf("round %d: store ends at tick %d, child reported %d", round, last, acked)
		}
		checkCrash(t, s, last)
		t.Logf("round %d: %d ticks reported, store has %d; %s", round, acked+1, last+1, s.Recovered())
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		acked = last // a tick stored but not reported is kept too
	}
}

// checkCrash compares every series with the oracle for ticks 0..last.
func checkCrash(t *testing.T, s *Store, last int64) {
	t.Helper()
	want := map[string]map[int64]float64{}
	var smp []Sample
	for k := int64(0); k <= last; k++ {
		smp = crashSamples(k, smp)
		for _, x := range smp {
			id := SeriesInfo{Name: x.Name, Labels: x.Labels}.String()
			if want[id] == nil {
				want[id] = map[int64]float64{}
			}
			want[id][t0.Add(time.Duration(k)*crashInterval).UnixMilli()] = x.Value
		}
	}
	ss, err := s.Select(nil, math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != len(want) {
		t.Fatalf("%d series stored, want %d", len(ss), len(want))
	}
	for _, si := range ss {
		w := want[si.String()]
		pts, err := s.Points(si.Ref, math.MinInt64, math.MaxInt64, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(pts) != len(w) {
			t.Fatalf("%s: %d points, want %d", si, len(pts), len(w))
		}
		for i, p := range pts {
			v, ok := w[p.T]
			if !ok || math.Float64bits(v) != math.Float64bits(p.V) || (i > 0 && p.T <= pts[i-1].T) {
				t.Fatalf("%s: point %d (%d, %x) wrong", si, i, p.T, math.Float64bits(p.V))
			}
		}
	}
}
