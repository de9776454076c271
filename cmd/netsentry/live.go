package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/netsentry/netsentry/bpf"
	"github.com/netsentry/netsentry/configs"
	"github.com/netsentry/netsentry/decode"
	"github.com/netsentry/netsentry/engine"
	"github.com/netsentry/netsentry/flowtable"
)

// ringShare is the part of performance.memory_limit_mb given to the capture
// rings (all queues of all interfaces); the flow tables get the rest.
func ringMB(limitMB int) int {
	return min(max(limitMB/8, 2), 1024)
}

// liveConfig derives the engine's live configuration from cfg.
func liveConfig(cfg configs.Config) engine.LiveConfig {
	return engine.LiveConfig{
		Interfaces: cfg.Interfaces(),
		Queues:     cfg.Performance.Threads,
		CPUs:       cfg.Performance.CPUs,
		Snaplen:    cfg.NetworkAnalysis.CaptureSnaplen,
		Filter:     cfg.NetworkAnalysis.BPFFilter,
		RingMB:     ringMB(cfg.Performance.MemoryLimitMB),
		BatchSize:  cfg.Performance.PacketBatchSize,
		Promisc:    true,
		FanoutHash: os.Getenv("NETSENTRY_FANOUT") == "hash",
	}
}

func live(ctx context.Context, cfg configs.Config, o options, stdout, stderr io.Writer) int {
	lc := liveConfig(cfg)
	if len(lc.Interfaces) == 0 {
		fmt.Fprintln(stderr, "netsentry: no capture interface: set capture_interface or pass --interface IF (or --replay FILE)")
		return 2
	}
	if lc.Filter != "" {
		if _, err := bpf.CompileFilter(lc.Filter, decode.LinkEthernet, max(lc.Snaplen, 64)); err != nil {
			fmt.Fprintf(stderr, "netsentry: config: network_analysis.bpf_filter: %v\n", err)
			return 2
		}
	}
	top, sinks, err := flowSinks(o, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "netsentry: %v\n", err)
		return 1
	}
	// Live workers must never wait on a writer, except for the final flush.
	exp := engine.NewExporter(1024, false, sinks...)
	var stopping atomic.Bool
	onEnd := func(recs []flowtable.Record) {
		if stopping.Load() {
			exp.SendWait(recs)
			return
		}
		exp.Send(recs)
	}
	flowCfg := cfg
	flowCfg.Performance.MemoryLimitMB = max(cfg.Performance.MemoryLimitMB-lc.RingMB, 16)
	var nShards int
	lc.NewShard = func(q int) (*flowtable.Shard, error) {
		return flowtable.New(shardConfig(flowCfg, nShards), onEnd)
	}
	lc.Logf = func(format string, args ...any) {
		fmt.Fprintf(stderr, "netsentry: "+format+"\n", args...)
	}
	nShards = lc.Queues
	if nShards <= 0 {
		nShards = allowedCPUs()
	}
	l, err := engine.NewLive(lc)
	if err != nil {
		exp.Close()
		fmt.Fprintf(stderr, "netsentry: %v\n", err)
		return 2
	}
	defer l.Close()
	fmt.Fprintf(stderr, "netsentry: capturing on %v: %s; fan-out %s\n", lc.Interfaces, l.Geometry(), l.FanoutMode())
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(runCtx) }()
	if isTerminal(stderr) {
		go liveProgress(ctx, stderr, l)
	}
	<-ctx.Done()
	stopping.Store(true)
	cancel()
	rerr := <-done
	if isTerminal(stderr) {
		fmt.Fprint(stderr, "\r\033[K")
	}
	if err := exp.Close(); err != nil {
		fmt.Fprintf(stderr, "netsentry: %v\n", err)
		return 1
	}
	if o.flowsOut != "-" {
		printSummary(stdout, liveSummary(l, top, o.topN))
	}
	if n := exp.Dropped(); n > 0 {
		fmt.Fprintf(stderr, "netsentry: %d flow records dropped: the flow writer could not keep up\n", n)
	}
	if rerr != nil {
		fmt.Fprintf(stderr, "netsentry: %v\n", rerr)
		return 1
	}
	return 0
}

// liveSummary merges the shards' counters and hosts, after Run returned.
func liveSummary(l *engine.Live, top *engine.TopFlows, n int) summary {
	s := buildSummary(l.Workers(), top, n)
	for _, q := range l.Stats() {
		s.drops = append(s.drops, queueDrops{queue: q.Queue, packets: q.KernelPackets, drops: q.KernelDrops, freezes: q.Freezes})
	}
	return s
}

func liveProgress(ctx context.Context, w io.Writer, l *engine.Live) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			tot := engine.TotalStats(l.Stats())
			fmt.Fprintf(w, "\r\033[Klive: %d packets  %.0f pps  %d kernel drops", tot.Packets, float64(tot.Packets-last), tot.KernelDrops)
			last = tot.Packets
		}
	}
}
