// Package engine owns the packet sources and the workers that consume them.
//
// A source hands frames to a Worker: the pcap/pcapng replay source (Replay)
// here, the TPACKET_V3 ring queues in the live engine. A Worker decodes each
// frame (package decode) and accounts it in its own flow-table shard (package
// flowtable); nothing after the source knows where frames came from.
// DefaultRouteInterface reads which interface the default route uses, for
// callers that choose an interface to capture on.
//
// Stopping a live capture is exact: each socket stops taking frames, its
// ring is walked to the last frame and its kernel statistics are read last,
// so each queue's KernelPackets = Packets + KernelDrops.
//
// Threading: one goroutine per Worker; a Worker, its shard and its Counters
// are touched by that goroutine only. Ended flows leave through the shard's
// onEnd callback, which the Exporter turns into a bounded queue drained by
// writer goroutines. A worker given a FeedRing (SetAlertFeed, before it
// runs) reports its batch's changes into it at every EndBatch: the worker
// is the ring's only writer, one consumer (the alert feeder) its only
// reader; a full ring drops, the worker never waits (alertfeed.go).
//
// The classic pcap reader (pcapfile.go) is our own, reading every record
// variant that tshark reads (old versions, the modified/Kuznetzov headers,
// AIX, FCS bits in the link type); pcapng is read with gopacket's pcapgo.
//
// Lifetimes: frames passed to Worker.Handle are not retained; ring memory
// never outlives its block. A replayed classic-pcap frame is read in place:
// in the file's mapping (valid until File.Close; the pages behind the
// reader are handed back between batches), or in the reader's one window
// of large reads (gzip, pipes), refilled only between batches, so every
// frame of a batch stays valid until its EndBatch, as a ring block's. A
// pcapng frame lives in gopacket's buffer until the next record is read.
//
// Snapshots and top-N selections (Worker.Snapshot with SnapshotParts.Top)
// are made by the worker between batches; a request whose context has
// ended before the worker takes it is skipped.
package engine
