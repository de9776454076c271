package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/netsentry/netsentry/flowtable"
)

// Snapshot is a copy of one worker's state, made by the worker itself
// between two batches, so that readers (the API, the metrics exporter) never
// touch a live shard and never stop a worker.
type Snapshot struct {
	Now       int64 // the shard's clock (latest packet time), Unix ns
	Counters  Counters
	Stats     flowtable.Stats
	Flows     []flowtable.Record       // open flows
	Hosts     []flowtable.HostCounters // every host, open flows included
	Protocols []flowtable.ProtoStat
	// Scan holds one SourceStats per source in the scan window: one
	// worker's, or, after MergeSnapshots, every worker's merged
	// (flowtable.MergeSources), since a source's connections are spread
	// over the shards.
	Scan []flowtable.SourceStats
	// ScanWindows is one worker's export of the same sources, what
	// MergeSnapshots unites; a merged Snapshot has none.
	ScanWindows []flowtable.SourceWindow
	ScanWindow  time.Duration // the scan signals' sliding window
	// FragAnomalies are the IP fragment anomalies per source (with Scan).
	FragAnomalies []flowtable.FragAnomalies
	// Top are the open flows SnapshotParts.Top selected, largest first.
	Top []flowtable.Record
}

// SnapshotParts selects what a snapshot copies (counters always). Flows
// carry their application protocol's name only, unless FlowDetail asks for
// the whole detection state (SNI, DNS names, ...), which costs the worker
// much more per flow.
type SnapshotParts struct {
	Flows, Hosts, Protocols, Scan bool
	FlowDetail                    bool
	// Top, if not nil, asks for the worker's top open flows matching it
	// (Snapshot.Top): a bounded selection (flowtable.Shard.TopFlows), no
	// copy of the table.
	Top *flowtable.FlowQuery
}

type snapRequest struct {
	ctx   context.Context
	parts SnapshotParts
	snap  Snapshot
	gone  bool // the worker found ctx ended and copied nothing
	done  chan struct{}
}

// Snapshot asks the worker for a copy of its state and waits for it (or for
// ctx). The worker answers at its next batch end: at once while it is busy,
// within its poll timeout when the link is idle. Safe from any goroutine.
func (w *Worker) Snapshot(ctx context.Context, parts SnapshotParts) (Snapshot, error) {
	r := &snapRequest{ctx: ctx, parts: parts, done: make(chan struct{})}
	select {
	case w.snapReq <- r:
	case <-ctx.Done():
		return Snapshot{}, fmt.Errorf("snapshot: worker busy: %w", ctx.Err())
	}
	select {
	case <-r.done:
		if r.gone {
			return Snapshot{}, fmt.Errorf("snapshot: %w", ctx.Err())
		}
		return r.snap, nil
	case <-ctx.Done():
		return Snapshot{}, fmt.Errorf("snapshot: worker did not answer: %w", ctx.Err())
	}
}

// answerSnapshot serves the snapshot requests pending now (the sensor's
// periodic one, top-N selections), at most maxAnswers of them, so that
// none waits long for a batch end and requests cannot hold the packets
// back. It runs on the worker's goroutine, between batches.
func (w *Worker) answerSnapshot() {
	for i := 0; i < maxAnswers && w.answerOne(); i++ {
	}
}

// maxAnswers bounds the requests one batch end serves.
const maxAnswers = 4

// answerOne serves one pending request and reports whether there was one.
func (w *Worker) answerOne() bool {
	select {
	case r := <-w.snapReq:
		if r.ctx.Err() != nil {
			// Nobody waits for it any more (the client has gone): no copy.
			r.gone = true
			close(r.done)
			return true
		}
		sh := w.shard
		s := &r.snap
		s.Now, s.Counters, s.Stats = sh.Now(), w.c, sh.Stats()
		if r.parts.Top != nil {
			s.Top = sh.TopFlows(r.parts.Top, nil)
		}
		if r.parts.Flows {
			s.Flows = sh.Snapshot(nil, r.parts.FlowDetail)
		}
		if r.parts.Hosts {
			s.Hosts = sh.HostSnapshot(nil)
		}
		if r.parts.Protocols {
			s.Protocols = sh.ProtocolSnapshot()
		}
		s.ScanWindow = sh.ScanWindow()
		if r.parts.Scan {
			s.ScanWindows = sh.ScanExport(nil)
			s.Scan = flowtable.MergeSources(s.ScanWindows)
			s.FragAnomalies = sh.FragmentAnomalies(nil)
		}
		close(r.done)
		return true
	default:
		return false
	}
}

// MergeSnapshots combines the snapshots of several workers (one per shard):
// flows are concatenated (the shards hold disjoint flows), hosts, protocols
// and counters are summed, and the scan windows are united into one
// SourceStats per source (flowtable.MergeSources: distinct ports and hosts
// as set unions, not sums).
func MergeSnapshots(snaps []Snapshot) Snapshot {
	var out Snapshot
	var hosts [][]flowtable.HostCounters
	var protos [][]flowtable.ProtoStat
	var scans [][]flowtable.SourceWindow
	var frags [][]flowtable.FragAnomalies
	for i := range snaps {
		s := &snaps[i]
		out.Now = max(out.Now, s.Now)
		out.Counters.Packets += s.Counters.Packets
		out.Counters.Bytes += s.Counters.Bytes
		out.Counters.NonIP += s.Counters.NonIP
		for r := range s.Counters.Decode {
			out.Counters.Decode[r] += s.Counters.Decode[r]
		}
		st := &out.Stats
		st.Packets += s.Stats.Packets
		st.Bytes += s.Stats.Bytes
		st.FlowsCreated += s.Stats.FlowsCreated
		st.FlowsEnded += s.Stats.FlowsEnded
		st.FlowsEvicted += s.Stats.FlowsEvicted
		st.Active += s.Stats.Active
		st.Fragments += s.Stats.Fragments
		st.FragOrphans += s.Stats.FragOrphans
		st.FragEvicted += s.Stats.FragEvicted
		st.FragTiny += s.Stats.FragTiny
		st.FragOverlap += s.Stats.FragOverlap
		st.FragConflict += s.Stats.FragConflict
		st.FragRangeOverflow += s.Stats.FragRangeOverflow
		st.FragSourcesEvicted += s.Stats.FragSourcesEvicted
		st.HostsOverflow += s.Stats.HostsOverflow
		st.DetectSkipped += s.Stats.DetectSkipped
		st.ScanEvicted += s.Stats.ScanEvicted
		st.DegradedMode = max(st.DegradedMode, s.Stats.DegradedMode)
		for m := range st.DegradedEntered {
			st.DegradedEntered[m] += s.Stats.DegradedEntered[m]
		}
		st.DegradedDetect += s.Stats.DegradedDetect
		st.DegradedScan += s.Stats.DegradedScan
		st.DegradedEmergency += s.Stats.DegradedEmergency
		out.Flows = append(out.Flows, s.Flows...)
		hosts = append(hosts, s.Hosts)
		protos = append(protos, s.Protocols)
		if s.ScanWindows != nil {
			scans = append(scans, s.ScanWindows)
		}
		out.ScanWindow = max(out.ScanWindow, s.ScanWindow)
		frags = append(frags, s.FragAnomalies)
	}
	if len(scans) > 0 {
		out.Scan = flowtable.MergeSources(scans...)
	}
	out.FragAnomalies = flowtable.MergeFragAnomalies(frags...)
	if len(hosts) > 0 {
		out.Hosts = flowtable.MergeHosts(hosts...)
	}
	if len(protos) > 0 {
		out.Protocols = flowtable.MergeProtocols(protos...)
	}
	return out
}
