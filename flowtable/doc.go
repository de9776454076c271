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
// marked as guesses and counted apart in the protocol distribution. IP fragments are attributed to their datagram's flow through a
// bounded fragment table keyed by (src, dst, protocol, IP id). Every flow that
// ends is exported with an EndReason: fin, rst, idle, active, eviction,
// end-of-capture or shutdown.
//
// Memory: entries live in a chunked slab (EntrySize bytes each, at most 128,
// checked by a test) indexed by a power-of-two hash index; the number of
// entries is bounded by Config.MaxFlows, derived from
// performance.memory_limit_mb by Limits. At the bound the flow that has
// waited longest (a closed one first, else the oldest idle one) is evicted and
// counted, never dropped silently. Timeouts are checked lazily: each flow has
// one item in an expiry queue per timeout class, re-armed when it is found
// still active, so a packet costs no list maintenance.
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
// Threading: all Shard methods run on the owning worker's goroutine. Readers
// (API, exporter) get Records, HostCounters and SourceWindows, which are
// copies; MergeSources runs on any goroutine.
package flowtable
