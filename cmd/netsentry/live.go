package main

import (
	"os"

	"github.com/netsentry/netsentry/configs"
	"github.com/netsentry/netsentry/engine"
)

// ringShare is the part of performance.memory_limit_mb given to the capture
// rings (all queues of all interfaces); the flow tables get the rest.
func ringMB(p configs.Performance) int {
	if p.RingSizeMB > 0 {
		return p.RingSizeMB
	}
	return min(max(p.MemoryLimitMB/8, 2), 1024)
}

// liveConfig derives the engine's live configuration from cfg.
func liveConfig(cfg configs.Config) engine.LiveConfig {
	return engine.LiveConfig{
		Interfaces: cfg.Interfaces(),
		Queues:     cfg.Performance.Threads,
		CPUs:       cfg.Performance.CPUs,
		Snaplen:    cfg.NetworkAnalysis.CaptureSnaplen,
		Filter:     cfg.NetworkAnalysis.BPFFilter,
		RingMB:     ringMB(cfg.Performance),
		BatchSize:  cfg.Performance.PacketBatchSize,
		Promisc:    true,
		FanoutHash: os.Getenv("NETSENTRY_FANOUT") == "hash",
	}
}

// liveSummary merges the shards' counters and hosts, after Run returned.
func liveSummary(l *engine.Live, top *engine.TopFlows, n int) summary {
	s := buildSummary(l.Workers(), top, n)
	for _, q := range l.Stats() {
		s.drops = append(s.drops, queueDrops{queue: q.Queue, packets: q.KernelPackets, drops: q.KernelDrops, freezes: q.Freezes, captured: q.Packets})
	}
	return s
}
