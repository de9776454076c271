package sensor

import (
	"context"

	"github.com/netsentry/netsentry/engine"
	"github.com/netsentry/netsentry/flowtable"
)

// TopFlows implements httpd.Sensor: the q.Limit open flows matching q with
// the largest q.By, largest first, across every worker. Each worker selects
// its own top q.Limit between two batches (flowtable.Shard.TopFlows: one
// pass over its entries, a heap of q.Limit, no copy of the table) and the
// sensor merges the lists (flowtable.MergeTop), so a call costs O(q.Limit)
// memory whatever the tables hold. It waits for the workers' next batch end,
// at most answerWait, or for ctx: a worker that takes the request after ctx
// has ended skips it. With no capture running there are none.
func (s *Sensor) TopFlows(ctx context.Context, q flowtable.FlowQuery) ([]flowtable.Record, error) {
	run := s.running()
	if run == nil || run.err.Load() != nil || q.Limit <= 0 {
		return nil, nil
	}
	wctx, cancel := context.WithTimeout(ctx, answerWait)
	defer cancel()
	snaps, err := workerSnapshots(wctx, run.l.Workers(), engine.SnapshotParts{Top: &q})
	if err != nil {
		return nil, err
	}
	parts := make([][]flowtable.Record, len(snaps))
	for i := range snaps {
		parts[i] = snaps[i].Top
	}
	return flowtable.MergeTop(&q, parts...), nil
}
