package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/pprof"

	"github.com/netsentry/netsentry/engine"
	"github.com/netsentry/netsentry/flowtable"
)

// pass is one measured replay in this process.
type pass struct {
	sample
	packets uint64
	allocs  uint64 // heap allocations (runtime.MemStats.Mallocs) during the pass
}

// inprocResult is one in-process run of three passes through one pipeline:
//
//   - cold: a new pipeline replays the trace (what the netsentry command does:
//     set-up, table growth, end-of-capture flush, exporter drained);
//   - warm: the same flow table replays a copy shifted in time, so its clock
//     continues and the table is already grown: the steady state, exporter
//     included;
//   - bare: the same again on a copy shifted further, with ended flows dropped
//     by the shard's callback instead of queued to an exporter: the packet
//     path alone (pcap reader, decode, flow table).
type inprocResult struct {
	cold, warm, bare pass
	flows            uint64 // flows the shard created in the cold pass
}

// discard is a Sink that drops every flow.
type discard struct{}

func (discard) WriteFlows([]flowtable.Record) error { return nil }
func (discard) Close() error                        { return nil }

// measure runs fn and returns the wall time, this process's CPU time (every
// thread: the exporter's goroutine and the GC count too) and the heap
// allocations it took.
func measure(fn func() error) (pass, error) {
	var p pass
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	mark, err := markCPU()
	if err != nil {
		return p, err
	}
	if err := fn(); err != nil {
		return p, err
	}
	if p.sample, err = mark.since(); err != nil {
		return p, err
	}
	runtime.ReadMemStats(&m1)
	p.allocs = m1.Mallocs - m0.Mallocs
	return p, nil
}

// pipeline is NetSentry's replay pipeline, wired as the netsentry command
// wires it: a worker whose shard hands ended flows to an exporter.
type pipeline struct {
	w   *engine.Worker
	exp *engine.Exporter // nil: ended flows are dropped
}

// swap hands ended flows to the exporter as the daemon does (without a
// copy, Exporter.Swap); with no exporter (the bare pass) they are dropped.
func (p *pipeline) swap(recs []flowtable.Record) []flowtable.Record {
	if p.exp != nil {
		return p.exp.Swap(recs)
	}
	return recs[:0]
}

// replayInProcess runs NetSentry's replay pipeline on trace in this process:
// engine.OpenFile, a flowtable shard whose ended flows go to an
// engine.Exporter with a discarding sink, engine.NewWorker, engine.Replay.
// warm and bare are time-shifted copies of trace (see inprocResult); either
// may be "" to skip its pass.
//
// Each pass runs under the pprof label pass=cold|warm|bare, which the
// exporter's goroutine inherits: a -cpuprofile reader picks passes with
// go tool pprof -tagfocus pass=cold.
func replayInProcess(ctx context.Context, trace, warm, bare string) (inprocResult, error) {
	var res inprocResult
	var err error
	p := &pipeline{}
	pprof.Do(ctx, pprof.Labels("pass", "cold"), func(ctx context.Context) {
		res.cold, err = measure(func() error {
			p.exp = engine.NewExporter(64, true, discard{})
			shard, err := flowtable.New(flowtable.DefaultConfig(), nil)
			if err != nil {
				return fmt.Errorf("in-process replay: %w", err)
			}
			shard.SetEndSwap(p.swap)
			p.w = engine.NewWorker(shard)
			rf, err := engine.OpenFile(trace)
			if err != nil {
				return fmt.Errorf("in-process replay: %w", err)
			}
			defer rf.Close()
			if _, err := replay(ctx, rf, p.w); err != nil {
				return err
			}
			if err := p.exp.Close(); err != nil {
				return fmt.Errorf("in-process replay: %w", err)
			}
			return nil
		})
	})
	if err != nil {
		return res, err
	}
	res.cold.packets = p.w.Counters().Packets
	res.flows = p.w.Shard().Stats().FlowsCreated

	for _, sp := range []struct {
		label    string
		path     string
		exporter bool
		out      *pass
	}{{"warm", warm, true, &res.warm}, {"bare", bare, false, &res.bare}} {
		if sp.path == "" {
			continue
		}
		pprof.Do(ctx, pprof.Labels("pass", sp.label), func(ctx context.Context) {
			*sp.out, err = p.shiftedPass(ctx, sp.path, sp.exporter)
		})
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// shiftedPass replays a time-shifted copy through the warm pipeline, its
// ended flows exported or dropped. Opening the file and starting the
// exporter are not measured.
func (p *pipeline) shiftedPass(ctx context.Context, path string, exporter bool) (pass, error) {
	rf, err := engine.OpenFile(path)
	if err != nil {
		return pass{}, fmt.Errorf("in-process replay: %w", err)
	}
	defer rf.Close()
	p.exp = nil
	if exporter {
		p.exp = engine.NewExporter(64, true, discard{})
	}
	before := p.w.Counters().Packets
	res, err := measure(func() error {
		if _, err := replay(ctx, rf, p.w); err != nil {
			return err
		}
		if p.exp != nil {
			if err := p.exp.Close(); err != nil {
				return fmt.Errorf("in-process replay: %w", err)
			}
		}
		return nil
	})
	res.packets = p.w.Counters().Packets - before
	return res, err
}

// replay replays rf through w and fails on a damaged file.
func replay(ctx context.Context, rf *engine.File, w *engine.Worker) (uint64, error) {
	st, err := engine.Replay(ctx, rf, w, engine.ReplayOptions{})
	if err != nil {
		return st.Packets, fmt.Errorf("in-process replay: %w", err)
	}
	if st.Stop != nil {
		return st.Packets, fmt.Errorf("in-process replay: %w", st.Stop)
	}
	return st.Packets, nil
}
