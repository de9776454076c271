package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/netsentry/netsentry/configs"
	"github.com/netsentry/netsentry/engine"
	"github.com/netsentry/netsentry/flowtable"
	"github.com/netsentry/netsentry/store"
)

// runtimeSlackMB is the room the Go runtime's soft memory limit leaves above
// the tables' budget: garbage between collections, the API's buffers,
// goroutine stacks. The fixed overhead docs/memory.md states (binary,
// runtime, API) includes it.
const runtimeSlackMB = 16

// tablesMB is what performance.memory_limit_mb leaves the tables once the
// capture rings and the local store are taken out.
func tablesMB(p configs.Performance) int {
	return max(p.MemoryLimitMB-ringMB(p)-storeMB(), configs.MinMemoryLimitMB)
}

// storeMB is the local store's share of performance.memory_limit_mb: what
// the store sensor.OpenHistory opens holds at most (pebble's block cache and
// memtables, the head buffers, the chunk coders; store.MemoryBytes), in
// whole MiB. The daemon always opens it.
func storeMB() int {
	return int((store.MemoryBytes(store.DefaultHeadBytes) + 1<<20 - 1) >> 20)
}

// liveBudget is the tables' budget of a live capture with cfg.
func liveBudget(cfg configs.Config) flowtable.Budget {
	c := cfg
	c.Performance.MemoryLimitMB = tablesMB(cfg.Performance)
	n := cfg.Performance.Threads
	if n <= 0 {
		n = allowedCPUs()
	}
	return tableBudget(c, n)
}

// setMemoryLimit sets the Go runtime's soft memory limit from the tables'
// budget and the store's share, so that garbage is collected before the heap passes it (unless
// GOMEMLIMIT is set). The rings are not Go memory and are left out.
func setMemoryLimit(cfg configs.Config) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(int64(tablesMB(cfg.Performance)+storeMB()+runtimeSlackMB) << 20)
}

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
		RetireMs:   cfg.Performance.BlockTimeoutMs,
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

// prepareCapture derives a capture's engine and flow-table configuration
// from cfg: the rings take their share of memory_limit_mb, the shards the
// rest, one shard per queue.
func prepareCapture(cfg configs.Config) (engine.LiveConfig, flowtable.Config, error) {
	lc := liveConfig(cfg)
	flowCfg := cfg
	flowCfg.Performance.MemoryLimitMB = tablesMB(cfg.Performance)
	nShards := lc.Queues
	if nShards <= 0 {
		nShards = allowedCPUs()
	}
	return lc, shardConfig(flowCfg, nShards), nil
}

// useDefaultRoute is for a capture interface that comes from the embedded
// default configuration (no --config, no --interface): it captures on the
// interface of the default route instead, read from the routing tables in
// netDir (see engine.DefaultRouteInterface), and returns the log line that
// says so. Without a default route the embedded default's interface stays,
// and the line says that.
func useDefaultRoute(cfg *configs.Config, netDir string) string {
	builtin := strings.Join(cfg.Interfaces(), ", ")
	name, err := engine.DefaultRouteInterface(netDir)
	if err != nil {
		return fmt.Sprintf("capture interface %s, from the built-in configuration (%v); pass --interface to choose another", builtin, err)
	}
	cfg.CaptureInterface = name
	cfg.NetworkAnalysis.CaptureInterfaces = nil
	return fmt.Sprintf("capture interface %s: the interface of the default route (no --interface or --config given; the built-in configuration names %s)", name, builtin)
}

// interfaceHint says what to do after an error naming an interface that
// does not exist (engine.ErrNoInterface), by where the name came from; ""
// for any other error.
func interfaceHint(err error, o options) string {
	switch {
	case !errors.Is(err, engine.ErrNoInterface):
		return ""
	case o.iface != "":
		return "\n(pass --interface with one of them)"
	case o.configPath != "":
		return fmt.Sprintf("\n(set capture_interface or network_analysis.capture_interfaces in %s to one of them, or pass --interface NAME)", o.configPath)
	default:
		return "\n(no default route to take the interface from: pass --interface with one of them, or --config FILE)"
	}
}
