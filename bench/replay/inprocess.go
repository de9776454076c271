package main

import (
	"context"
	"fmt"
	"runtime"

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

// replayInProcess runs NetSentry's replay pipeline on trace in this process:
// engine.OpenFile, a flowtable shard whose ended flows go to an
// engine.Exporter with a discarding sink, engine.NewWorker, engine.Replay.
// warm and bare are time-shifted copies of trace (see inprocResult); either
// may be "" to skip its pass.
func replayInProcess(ctx context.Context, trace, warm, bare string) (inprocResult, error) {
	var res inprocResult
	var exp *engine.Exporter
	send := func(recs []flowtable.Record) {
		if exp != nil {
			exp.Send(recs)
		}
	}
	var w *engine.Worker
	var err error
	res.cold, err = measure(func() error {
		exp = engine.NewExporter(64, true, discard{})
		shard, err := flowtable.New(flowtable.DefaultConfig(), send)
		if err != nil {
			return fmt.Errorf("in-process replay: %w", err)
		}
		w = engine.NewWorker(shard)
		rf, err := engine.OpenFile(trace)
		if err != nil {
			return fmt.Errorf("in-process replay: %w", err)
		}
		defer rf.Close()
		if _, err := replay(ctx, rf, w); err != nil {
			return err
		}
		if err := exp.Close(); err != nil {
			return fmt.Errorf("in-process replay: %w", err)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	res.cold.packets = w.Counters().Packets
	res.flows = w.Shard().Stats().FlowsCreated

	for _, p := range []struct {
		path     string
		exporter bool
		out      *pass
	}{{warm, true, &res.warm}, {bare, false, &res.bare}} {
		if p.path == "" {
			continue
		}
		rf, err := engine.OpenFile(p.path)
		if err != nil {
			return res, fmt.Errorf("in-process replay: %w", err)
		}
		exp = nil
		if p.exporter {
			exp = engine.NewExporter(64, true, discard{})
		}
		before := w.Counters().Packets
		*p.out, err = measure(func() error {
			if _, err := replay(ctx, rf, w); err != nil {
				return err
			}
			if exp != nil {
				if err := exp.Close(); err != nil {
					return fmt.Errorf("in-process replay: %w", err)
				}
			}
			return nil
		})
		rf.Close()
		if err != nil {
			return res, err
		}
		p.out.packets = w.Counters().Packets - before
	}
	return res, nil
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
