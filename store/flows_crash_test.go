package store

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/netsentry/netsentry/flowtable"
)

const flowCrashEnv = "NETSENTRY_FLOWCRASH_DIR"

var flowCrashBase = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// flowCrashBatch is batch id of the crash test: its size and records follow
// from id alone.
func flowCrashBatch(id uint64) []flowtable.Record {
	n := 1 + int(id*7919%97)
	return synth(id, n, func(i int) int64 { return flowCrashBase + int64(id)*1e9 + int64(i)*1e6 })
}

// flowCrashChild writes batches from id start until it is killed, saying
// "begin id" before each WriteFlows and "ok id" after it returned nil.
func flowCrashChild(dir string, start uint64) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: quiet{}})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	f, err := OpenFlowLog(db, FlowOptions{Partition: time.Minute, BlockRecords: 64})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for id := start; ; id++ {
		fmt.Println("begin", id)
		if err := f.WriteFlows(flowCrashBatch(id)); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("ok", id)
	}
}

// TestFlowCrash runs a child that writes batches into a real directory and
// SIGKILLs it at random moments, 12 times: after each reopen every batch the
// child reported written is there whole and equal, a batch it began but did
// not report is there whole or not at all, and every stored block decodes
// with as many records as its summary says.
func TestFlowCrash(t *testing.T) {
	if dir := os.Getenv(flowCrashEnv); dir != "" {
		start, _ := strconv.ParseUint(os.Getenv(flowCrashEnv+"_START"), 10, 64)
		flowCrashChild(dir, start)
		return
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(9, 10))
	okd := map[uint64]bool{}
	begun := map[uint64]bool{}
	next := uint64(0)
	const kills = 12
	for k := range kills {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFlowCrash$", "-test.count=1")
		cmd.Env = append(os.Environ(), flowCrashEnv+"="+dir, flowCrashEnv+"_START="+strconv.FormatUint(next, 10))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var lines []string
		first := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			sc := bufio.NewScanner(out)
			once := false
			for sc.Scan() {
				mu.Lock()
				lines = append(lines, sc.Text())
				mu.Unlock()
				if !once && strings.HasPrefix(sc.Text(), "ok ") {
					once = true
					close(first)
				}
			}
		}()
		select {
		case <-first:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatal("child wrote nothing in 30 s")
		}
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-done
		cmd.Wait()
		var nOK int
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) != 2 || (f[0] != "begin" && f[0] != "ok") {
				t.Fatalf("child said %q", l)
			}
			id, _ := strconv.ParseUint(f[1], 10, 64)
			if f[0] == "ok" {
				okd[id] = true
				nOK++
			} else {
				begun[id] = true
			}
			next = max(next, id+1)
		}
		inflight := "none"
		if l := lines[len(lines)-1]; strings.HasPrefix(l, "begin ") {
			inflight = strings.TrimPrefix(l, "begin ")
		}
		present := checkFlowCrashDir(t, dir, okd, begun)
		t.Logf("kill %d: %d batches written before it, %d in all; batch in flight at the kill: %s, stored whole: %v",
			k, nOK, len(okd), inflight, present[inflight])
		for id := range begun {
			if present[strconv.FormatUint(id, 10)] {
				okd[id] = true // stored: it must stay
			}
		}
	}
}

// checkFlowCrashDir reopens dir and checks it; it returns which batches begun
// but not reported are stored (whole).
func checkFlowCrashDir(t *testing.T, dir string, okd, begun map[uint64]bool) map[string]bool {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: quiet{}})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer db.Close()
	f, err := OpenFlowLog(db, FlowOptions{})
	if err != nil {
		t.Fatalf("reopen flow log after kill: %v", err)
	}
	got := map[uint64][]string{}
	q := anyQuery(1000)
	for {
		recs, nx, err := f.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for i := range recs {
			got[recs[i].PacketsTx>>20] = append(got[recs[i].PacketsTx>>20], js(&recs[i]))
		}
		if nx == "" {
			break
		}
		q.Cursor = nx
	}
	for id, recs := range got {
		if !begun[id] && !okd[id] {
			t.Fatalf("batch %d stored but never begun", id)
		}
		want := naive(flowCrashBatch(id), anyQuery(1))
		if okd[id] || len(recs) != 0 {
			diff(t, "batch "+strconv.FormatUint(id, 10), recs, want)
		}
	}
	for id := range okd {
		if len(got[id]) == 0 {
			t.Fatalf("batch %d reported written is lost", id)
		}
	}
	// Every block decodes whole, with the count of its summary.
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{keyFlowSummary}, UpperBound: []byte{keyFlowSummary + 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var total int64
	for it.First(); it.Valid(); it.Next() {
		s, err := decodeSummary(it.Value())
		if err != nil {
			t.Fatal(err)
		}
		k := it.Key()
		v, c, err := db.Get(append(append([]byte{keyFlowBlock}, k[1:9]...), k[17:]...))
		if err != nil {
			t.Fatalf("block of summary %x: %v", k, err)
		}
		recs, _, err := f.decodeBlock(v, nil)
		c.Close()
		if err != nil || len(recs) != s.count {
			t.Fatalf("block %x: %d records, summary says %d (%v)", k, len(recs), s.count, err)
		}
		total += int64(len(recs))
	}
	if st := f.Stats(); st.Records != total {
		t.Fatalf("totals say %d records, blocks hold %d", st.Records, total)
	}
	checkFlowBytes(t, db, f)
	if s, v := len(keysIn(t, db, keyFlowSummary, keyFlowSummary+1)), len(keysIn(t, db, keyFlowBlock, keyFlowBlock+1)); s != v {
		t.Fatalf("%d summaries, %d block values", s, v)
	}
	present := map[string]bool{}
	for id := range begun {
		if !okd[id] {
			present[strconv.FormatUint(id, 10)] = len(got[id]) != 0
		}
	}
	return present
}
