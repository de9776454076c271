// Package flowtable owns the flow tables: one Shard per worker, each written
// by that worker alone with no lock on the packet path.
//
// A Shard keeps bidirectional flows keyed by the normalised 5-tuple plus
// VLAN ids (Zeek's key), with per-direction packets and wire bytes, first and
// last packet time, TCP flags and state (SYN_SENT, ESTABLISHED, FIN_WAIT,
// CLOSED, RESET), Zeek's conn_state (S0, S1, SF, REJ, ... from Zeek's
// per-endpoint TCP states, kept in two bytes of the entry) and the initiator
// (the SYN sender, else a SYN-ACK's destination, else the first packet's
// source). Application-protocol names that only a port suggests are
// marked as guesses and counted apart in the protocol distribution. IP
// fragments are attributed to their datagram's flow through a bounded
// fragment table keyed by (src, dst, protocol, IP id, VLAN); each slot
// keeps the datagram's first 64 bytes, so that a datagram whose first
// fragment is too short for its transport header (a tiny fragment, a split
// SYN) is still read, and counts tiny, overlapping and conflicting fragments
// per source (FragmentAnomalies; see docs/accounting.md). Every flow that
// ends is exported with an EndReason: fin, rst, idle, active, eviction,
// end-of-capture or shutdown.
//
// Memory: one Budget, computed from performance.memory_limit_mb and the
// number of shards, bounds every table (flows, detection states, hosts,
// fragments, scan tracker, reassembly buffers) by stated per-entry costs
// (FlowBytes, DetectBytes, HostBytes, ...; docs/memory.md), checked against
// the heap by tests. Flow entries (128 bytes, two cache lines) live in a
// chunked slab whose last chunk is cut to Config.MaxFlows, their expiry
// links in a parallel slab, indexed by open addressing over cache-line
// buckets of 7 tags and slots (index.go), allocated once at its final size.
// Under overload the owner's Pressure calls shed detection, scan signals and
// idle flows in that order (degrade.go), never packet or byte counts. At the bound the flow that has waited
// longest (a closed one first, else the oldest idle one) is evicted and
// counted, never dropped silently. Timeouts are checked lazily: each flow is
// in one expiry queue (a list through the entries, in arming order) and is
// re-armed at the tail when found still active, so a packet costs no list
// maintenance. Detection states (Config.MaxDetect) are taken by a flow's
// first payload packet and returned when it ends; when none is free the flow
// goes without detection (Stats.DetectSkipped).
//
// The host table (Hosts) counts every IP layer of every frame per address, as
// tshark's endpoint table does, bounded by Config.MaxHosts.
//
// The scan tracker (ScanTracker, one per shard) counts per source address
// the connections it starts and the distinct destination ports and hosts
// they reach in a sliding window. Live capture spreads one source's
// connections over every shard, so a shard's counts are a part: Export
// copies each source's window (exact values, or HyperLogLog registers) and
// MergeSources unites the parts of every shard into one SourceStats per
// source. Trackers of one process share a hash seed (ScanConfig.Seed) so
// that their parts merge.
//
// Scan changes (scanfeed.go): with TrackScanChanges a shard marks each
// source that starts a connection (in the source's own tracker slot), and
// ScanChanges reports each marked source once per batch, for the alert
// feed.
//
// Threading: all Shard methods run on the owning worker's goroutine. Readers
// (API, exporter) get Records, HostCounters and SourceWindows, which are
// copies; MergeSources runs on any goroutine.
package flowtable
