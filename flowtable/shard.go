package flowtable

import (
	"fmt"
	"slices"
	"time"
	"unsafe"

	"github.com/netsentry/netsentry/decode"
	"github.com/netsentry/netsentry/decode/app"
)

// Config sets a shard's bounds and timeouts. Zero durations take the defaults
// of DefaultConfig.
type Config struct {
	// MaxFlows bounds the entries of one shard; at the bound the oldest idle
	// flow is evicted (and counted) to make room.
	MaxFlows int
	// MaxHosts bounds the host table of one shard.
	MaxHosts int
	// MaxFragments bounds the IP fragment table of one shard.
	MaxFragments int
	// IdleTimeout ends a flow (other than UDP) that saw no packet for this long.
	IdleTimeout time.Duration
	// UDPIdleTimeout ends a UDP flow that saw no packet for this long.
	UDPIdleTimeout time.Duration
	// ActiveTimeout cuts a long flow into records of at most this length.
	ActiveTimeout time.Duration
	// Linger keeps a closed (FIN from both sides) or reset TCP flow this long
	// to absorb the last ACKs and retransmissions before it is exported.
	Linger time.Duration
	// FragmentTimeout forgets an IP datagram's fragments this long after the last.
	FragmentTimeout time.Duration
	// Detect turns on application-protocol detection from payload (package
	// decode/app); without it flows get the port-based guess only.
	Detect bool
	// Protocols, when not nil, lists the detectors to run
	// (network_analysis.protocols); the others are switched off.
	Protocols []string
	// ReassemblyBuffers is the number of 4 KiB buffers detection may use to
	// collect a message split over packets (default 256).
	ReassemblyBuffers int
	// MaxDetect bounds the detection states of one shard (Detect only;
	// default MaxFlows/2). A flow takes a state with its first payload
	// packet and gives it back when it ends; when none is free the flow is
	// reported by its port guess and counted in Stats.DetectSkipped.
	MaxDetect int
	// Scan configures the per-source scan signals (connections, distinct
	// destination ports and hosts in a sliding window); zero fields take
	// the defaults of ScanConfig, except MaxSources (8192 per shard) and
	// ExactPorts (16: past that HyperLogLog, already ~exact at that size).
	Scan ScanConfig
}

// DefaultConfig returns the bounds and timeouts used when a field is zero.
func DefaultConfig() Config {
	return Config{
		MaxFlows:        1 << 20,
		MaxHosts:        1 << 18,
		MaxFragments:    8192,
		IdleTimeout:     120 * time.Second,
		UDPIdleTimeout:  60 * time.Second,
		ActiveTimeout:   30 * time.Minute,
		Linger:          5 * time.Second,
		FragmentTimeout: 30 * time.Second,
	}
}

// EntrySize is the size in bytes of one flow in a shard's slabs: its
// entry (two cache lines, aligned) and its link (expiry-queue links, index
// hash, free-list link: a slab of their own the packet path does not touch).
const EntrySize = int(unsafe.Sizeof(entry{})) + int(unsafe.Sizeof(link{}))

// entry is the part of a flow the packet path reads and writes: key,
// counters, clocks and state, in 128 bytes (two cache lines; the slab's
// chunks are page-aligned, so an entry never straddles a third line).
// Direction 0 is A to B. The expiry-queue links, the index hash and the
// free-list link are in the link slab, the detection state in the
// detection slab.
type entry struct {
	key   Key
	flags [2]uint8 // TCP flags seen, per direction
	state State
	initB bool // the initiator is B
	tun   decode.Tunnel
	q     uint8 // the expiry queue that owns the entry (queueNone when free)
	end   EndReason
	// ap holds apDone, set when detection needs no more packets of this
	// flow (or it has no detection state), so that the packet path does
	// not touch its detection state (another cache line) again, and in
	// its low bits the flow's open-protocol key (openKey): the row of the
	// shard's open-flow protocol table its counts are in.
	ap uint8
	// ep is each side's connection state (see epInactive ...): Zeek's
	// endpoint state for TCP, "sent a packet" for UDP.
	ep    [2]uint8
	det   uint32 // detection state number+1, 0 when the flow has none
	pkts  [2]uint64
	bytes [2]uint64 // wire (frame) bytes
	// ipBytes are the IP lengths of the flow's packets (decode.Packet.IPLen
	// of the header the flow's tuple comes from; a fragment: its own).
	ipBytes [2]uint64
	first   int64
	last    int64
	host    [2]uint32 // host-table slab indices of A and B (0: not in the table)
}

// link is a flow's place in its expiry queue and the index, kept apart
// from the entry: only creating, arming, re-arming, expiry and removal
// touch it.
type link struct {
	due          int64  // when the expiry queue looks at the flow again
	qprev, qnext uint32 // expiry queue links (slot numbers, 0 at the ends)
	hash         uint32 // the key's hash, to take the flow out of the index
	next         uint32 // free list (a free slot)
}

// queue is an expiry queue: a doubly linked list through the link slab, in
// the order flows were (re)armed, so a flow is in at most one queue and
// moving it costs no memory.
type queue struct{ head, tail uint32 }

const (
	queueIdle = iota // every protocol but UDP
	queueUDP
	queueLinger
	numQueues
	queueNone = 0xff
)

const (
	chunkBits = 14
	chunkSize = 1 << chunkBits
	chunkMask = chunkSize - 1
)

// Stats are a shard's counters. They are written by the shard's owner only;
// read them from that goroutine or through a snapshot.
type Stats struct {
	Packets       uint64 // packets seen by Packet
	Bytes         uint64 // wire bytes seen by Packet
	FlowsCreated  uint64
	FlowsEnded    uint64
	FlowsEvicted  uint64
	Active        int    // flows in the table now
	Fragments     uint64 // IP fragments seen
	FragOrphans   uint64 // fragments whose first fragment never came (exported with ports 0)
	FragEvicted   uint64 // fragment-table slots overwritten while still pending
	HostsOverflow uint64 // host updates dropped because the host table was full
	// DetectSkipped counts flows reported by their port guess alone because
	// every detection state of the budget was in use (degraded mode:
	// "detection skipped: budget").
	DetectSkipped uint64
	ScanEvicted   uint64 // scan-tracker sources dropped to make room (ScanStats.Evicted)

	// Fragment anomalies (per source: FragmentAnomalies): first fragments
	// too short for the transport header, fragments overlapping data
	// already received, and overlaps whose bytes differ (compared within
	// the first 64 bytes of the datagram).
	FragTiny, FragOverlap, FragConflict uint64
	// FragRangeOverflow counts datagrams' byte ranges joined because a
	// datagram had more than 8 gaps and no coverage bitmap was free.
	FragRangeOverflow uint64
	// FragSourcesEvicted counts sources dropped from the fragment-anomaly
	// table to make room.
	FragSourcesEvicted uint64

	// Overload degradation (degrade.go): the current level, how often each
	// level was entered, flows that got no detection state because of it,
	// new connections not fed to the scan tracker, and flows ended by the
	// emergency timeouts.
	DegradedMode      Mode
	DegradedEntered   [NumModes]uint64
	DegradedDetect    uint64
	DegradedScan      uint64
	DegradedEmergency uint64
}

// Shard is one worker's flow table. It has a single owner: every method must
// be called from the same goroutine, and none takes a lock.
type Shard struct {
	cfg      Config
	timeouts [numQueues]int64
	active   int64
	chunks   [][]entry
	links    [][]link // parallel to chunks
	// The slabs' memory, allocated at once (pages no flow touched cost
	// nothing) so that it can be backed by huge pages; chunks are cut
	// from it as flows arrive.
	entryMem  []entry
	linkMem   []link
	used      uint32   // slots handed out so far (slot 0 is never used)
	free      uint32   // head of the free list
	index     []bucket // open addressing, bucketWays flows per cache line; the part of indexMem in use
	indexMem  []bucket // the index's memory at its final size (bucketCount)
	mask      uint32
	now       int64
	queues    [numQueues]queue
	frags     fragTable
	hosts     Hosts
	ended     []Record
	stats     Stats
	key       Key    // scratch
	hint      uint32 // the next add's key hash from Prefetch (with tagBit), 0: none
	onEnd     func([]Record)
	swap      func([]Record) []Record // SetEndSwap; nil: onEnd
	endBuffer int
	apps      [][]app.State // detection states, numbered from 0
	appsUsed  uint32        // states handed out so far
	appsFree  []uint32      // freed state numbers (a stack; its capacity is MaxDetect)
	pool      *app.Pool
	protos    protoTable
	open      [openKeys]openStat // open flows' counts per protocol key (protocols.go)
	scan      *ScanTracker
	changes   *scanChanges // sources whose scan signals changed this batch (scanfeed.go); nil: off
	marks     *scanChanges // changes while connections mark their sources (MarkScanChanges), else nil
	// last is the slot the latest add updated, lastFromInit whether that
	// packet came from the flow's initiator.
	last         uint32
	lastFromInit bool
	// Overload degradation (degrade.go).
	mode      Mode
	calmSince int64  // packet time the level was last confirmed
	evictSeen uint64 // FlowsEvicted at the last Pressure
	scanTick  uint32
}

// New returns an empty shard. onEnd, if not nil, receives ended flows in
// batches from Flush and Expire; the slice is reused after onEnd returns.
func New(cfg Config, onEnd func([]Record)) (*Shard, error) {
	def := DefaultConfig()
	for _, f := range []struct{ v, d *int }{{&cfg.MaxFlows, &def.MaxFlows}, {&cfg.MaxHosts, &def.MaxHosts}, {&cfg.MaxFragments, &def.MaxFragments}} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	for _, f := range []struct{ v, d *time.Duration }{{&cfg.IdleTimeout, &def.IdleTimeout}, {&cfg.UDPIdleTimeout, &def.UDPIdleTimeout},
		{&cfg.ActiveTimeout, &def.ActiveTimeout}, {&cfg.Linger, &def.Linger}, {&cfg.FragmentTimeout, &def.FragmentTimeout}} {
		switch {
		case *f.v < 0:
			return nil, fmt.Errorf("new flow table: negative timeout %v", *f.v)
		case *f.v == 0:
			*f.v = *f.d
		}
	}
	if cfg.MaxFlows < 1 || cfg.MaxFlows > 1<<31 {
		return nil, fmt.Errorf("new flow table: max flows %d out of range", cfg.MaxFlows)
	}
	s := &Shard{cfg: cfg, onEnd: onEnd, endBuffer: 256}
	s.timeouts = [numQueues]int64{int64(cfg.IdleTimeout), int64(cfg.UDPIdleTimeout), int64(cfg.Linger)}
	s.active = int64(cfg.ActiveTimeout)
	// The hash index's memory is allocated at its final size (no garbage:
	// pages never touched cost nothing), and the index in use is its
	// first part, doubled in place as flows come (growIndex): a table of
	// 100 k flows probes 2 MiB of buckets, not the 16-128 MiB the bound
	// takes, so that its buckets stay in the cache.
	nb := bucketCount(cfg.MaxFlows)
	s.indexMem = make([]bucket, nb)
	hugeSlice(s.indexMem)
	n0 := min(nb, indexStart)
	s.index = s.indexMem[:n0:n0]
	s.mask = uint32(n0 - 1)
	s.entryMem = make([]entry, cfg.MaxFlows+1)
	s.linkMem = make([]link, cfg.MaxFlows+1)
	hugeSlice(s.entryMem)
	hugeSlice(s.linkMem)
	s.used = 1
	s.ended = make([]Record, 0, s.endBuffer)
	s.frags.init(cfg.MaxFragments, int64(cfg.FragmentTimeout))
	if cfg.ReassemblyBuffers <= 0 {
		cfg.ReassemblyBuffers = 256
		s.cfg.ReassemblyBuffers = 256
	}
	if cfg.Detect {
		if cfg.MaxDetect <= 0 {
			cfg.MaxDetect = max(cfg.MaxFlows/2, 1)
		}
		cfg.MaxDetect = min(cfg.MaxDetect, cfg.MaxFlows)
		s.cfg.MaxDetect = cfg.MaxDetect
		s.appsFree = make([]uint32, 0, cfg.MaxDetect)
	}
	s.pool = app.NewPool(cfg.ReassemblyBuffers)
	if cfg.Protocols != nil {
		s.pool.Enable(cfg.Protocols) // names without a detector switch nothing
	}
	if cfg.Scan.MaxSources == 0 {
		cfg.Scan.MaxSources = 8192
	}
	if cfg.Scan.ExactPorts == 0 {
		cfg.Scan.ExactPorts = 16
	}
	s.cfg.Scan = cfg.Scan
	s.scan = NewScanTracker(cfg.Scan)
	s.hosts.init(cfg.MaxHosts)
	return s, nil
}

// bucketCount is the number of index buckets (cache lines) for maxFlows
// flows: a power of two, at least maxFlows/4 (the index at most 4/7 full)
// and 256.
func bucketCount(maxFlows int) int {
	n := 256
	for n*4 < maxFlows {
		n <<= 1
	}
	return n
}

// Config returns the shard's effective configuration.
func (s *Shard) Config() Config { return s.cfg }

// Stats returns a copy of the shard's counters.
func (s *Shard) Stats() Stats {
	st := s.stats
	st.HostsOverflow = s.hosts.overflow
	st.ScanEvicted = s.scan.Stats().Evicted
	st.FragSourcesEvicted = s.frags.anom.evicted
	st.DegradedMode = s.mode
	return st
}

// HostSnapshot appends every host's counters (every frame so far, of open
// and ended flows and of IP layers no flow carries) to dst, growing it at
// most once; its cost is that of copying the host table.
func (s *Shard) HostSnapshot(dst []HostCounters) []HostCounters {
	h := &s.hosts
	n := int(h.used) - 1
	// The hosts count every frame as it comes (open flows' included): one
	// copy of the slab, in place in dst (grown once to hold every host),
	// then the hosts without a frame dropped, keeping slab order.
	base := len(dst)
	dst = slices.Grow(dst, n)[:base+n]
	all := dst[base:]
	for c := 0; c < len(h.chunks) && c*chunkSize < int(h.used); c++ {
		ch := h.chunks[c]
		lo := 0
		if c == 0 {
			lo = 1 // slot 0 is never used
		}
		for k := lo; k < len(ch) && c*chunkSize+k < int(h.used); k++ {
			all[c*chunkSize+k-1] = ch[k].counters(h.vers[c*chunkSize+k])
		}
	}
	m := 0
	for j := range all {
		if all[j].PacketsTx+all[j].PacketsRx > 0 {
			all[m] = all[j]
			m++
		}
	}
	return dst[:base+m]
}

// HostCount returns the number of hosts in the host table.
func (s *Shard) HostCount() int { return s.hosts.Len() }

// Now returns the shard's clock: the latest packet timestamp seen.
func (s *Shard) Now() int64 { return s.now }

func (s *Shard) slot(i uint32) *entry {
	return &s.chunks[i>>chunkBits][i&chunkMask]
}

func (s *Shard) lnk(i uint32) *link {
	return &s.links[i>>chunkBits][i&chunkMask]
}

// app returns detection state number+1 d. A flow without a state (detection
// off, no payload yet, or none free) gets the port-based guess when its
// record is written.
func (s *Shard) app(d uint32) *app.State {
	d--
	return &s.apps[d>>chunkBits][d&chunkMask]
}

// takeApp gives e a zeroed detection state, or reports that none is free
// (counted in DetectSkipped).
func (s *Shard) takeApp(e *entry) bool {
	var d uint32
	if n := len(s.appsFree); n > 0 {
		d = s.appsFree[n-1]
		s.appsFree = s.appsFree[:n-1]
	} else if int(s.appsUsed) < s.cfg.MaxDetect {
		d = s.appsUsed
		if int(d>>chunkBits) >= len(s.apps) {
			// Huge pages, as the flow slabs: a chunk is 7 MiB of states
			// read at random (on 4 KiB pages, a TLB miss per state).
			c := make([]app.State, min(chunkSize, s.cfg.MaxDetect-int(d)))
			hugeSlice(c)
			s.apps = append(s.apps, c)
		}
		s.appsUsed++
	} else {
		s.stats.DetectSkipped++
		return false
	}
	e.det = d + 1
	s.app(e.det).Reset()
	return true
}

// dropApp parses what e's detection state left collected, gives its
// reassembly buffer back and keeps the state (its result is still to be
// read); freeApp returns the state itself.
func (s *Shard) dropApp(e *entry) {
	if e.det != 0 && !e.appDone() {
		s.app(e.det).Release(s.pool)
	}
}

func (s *Shard) freeApp(e *entry) {
	if e.det != 0 {
		// A reassembly buffer still held goes back too. The free list never
		// grows: a state is pushed at most once.
		s.app(e.det).Release(s.pool)
		s.appsFree = append(s.appsFree, e.det-1)
		e.det = 0
	}
}

// appOf fills st with slot i's detection result (e's port guess when
// it has no detection state).
func (s *Shard) appOf(i uint32, e *entry, st *app.State) {
	st.Reset()
	s.appOfZeroed(e, st)
}

// appOfZeroed is appOf into a zeroed (Reset) st.
func (s *Shard) appOfZeroed(e *entry, st *app.State) {
	if e.det != 0 {
		st.CopyFrom(s.app(e.det))
		return
	}
	portGuess(e, st)
}

// portGuess sets a zeroed st to e's port guess (a flow without detection
// state): what Feed without payload leaves, from the initiator's view.
func portGuess(e *entry, st *app.State) {
	k := &e.key
	if k.Proto != 6 && k.Proto != 17 {
		return
	}
	sp, dp := k.PortA, k.PortB
	if e.initB {
		sp, dp = dp, sp
	}
	st.Feed(nil, nil, true, k.Proto, sp, dp)
}

// appOver is appOf into a st whose arena is zero past its used bytes,
// which stays so (app.State.CopyOver).
func (s *Shard) appOver(e *entry, st *app.State) {
	if e.det != 0 {
		st.CopyOver(s.app(e.det))
		return
	}
	st.ResetOver()
	portGuess(e, st)
}

// Packet accounts one decoded frame captured at ts (Unix nanoseconds): its
// hosts, its flow, and for UDP tunnels the outer flow as well. frame is the
// frame p was decoded from; its payload feeds protocol detection and is not
// retained.
func (s *Shard) Packet(p *decode.Packet, frame []byte, ts int64) { s.packet(p, frame, ts, 0) }

// PacketHashed is Packet for a frame whose flow hash h Prefetch returned
// (0: none), so that the hash is not computed twice.
func (s *Shard) PacketHashed(p *decode.Packet, frame []byte, ts int64, h uint32) {
	s.packet(p, frame, ts, h)
}

func (s *Shard) packet(p *decode.Packet, frame []byte, ts int64, h uint32) {
	if ts > s.now {
		s.now = ts
	}
	s.stats.Packets++
	s.stats.Bytes += uint64(p.WireLen)
	// Host accounting: each IP layer counted now (see deferredLayers) is
	// counted through the flow that carries it when there is one (the flow
	// keeps its hosts' slab indices), else looked up.
	nNow := int(p.NumIP)
	if p.IsFragment {
		nNow = deferredLayers(p) // the rest count when the datagram completes
	}
	outerLayer, flowLayer := -1, -1
	if p.HasOuter && int(p.OuterLayer) < nNow {
		outerLayer = int(p.OuterLayer)
	}
	if p.HasFlow && !p.NeedPorts && int(p.NumIP)-1 < nNow {
		flowLayer = int(p.NumIP) - 1
	}
	for i := 0; i < nNow; i++ {
		if i != outerLayer && i != flowLayer {
			l := &p.IP[i]
			s.hosts.add(&l.Src, &l.Dst, l.IPVersion, p.WireLen)
		}
	}
	if p.IsFragment && s.fragment(p, frame, ts, outerLayer, flowLayer) {
		return
	}
	if p.HasOuter {
		s.update(&p.Outer, p.VLAN, p.InnerVLAN, decode.TunnelNone, 0, 0, p.WireLen, p.IPLen[p.OuterLayer], ts, outerLayer >= 0)
	}
	if !p.HasFlow {
		return
	}
	seg := segHeader
	if p.PayloadLen > 0 {
		seg |= segData
	}
	s.hint = h // Prefetch's hash of p.Flow, for add
	s.update(&p.Flow, p.VLAN, p.InnerVLAN, p.Tunnel, p.TCPFlags, seg, p.WireLen, flowIPLen(p), ts, flowLayer >= 0)
	if i := s.last; i != 0 && s.cfg.Detect && (p.Flow.Proto == 6 || p.Flow.Proto == 17) {
		if e := s.slot(i); !e.appDone() {
			// A state is taken with the first payload: until then the port
			// guess (made from the initiator's view, as Feed would) stands,
			// so a flood of SYNs holds no detection state. Once taken, an
			// empty segment is not fed: Feed would return at once (its
			// guess was set by the first call), and the state's lines stay
			// out of the cache for a flow's bare ACKs.
			if pl := p.Payload(frame); len(pl) > 0 {
				if e.det == 0 && s.mode >= ModeNoDetect {
					s.stats.DegradedDetect++
					e.ap |= apDone // degraded: port guess only
					return
				}
				if e.det == 0 && !s.takeApp(e) {
					e.ap |= apDone // degraded: port guess only
					return
				}
				st := s.app(e.det)
				st.Feed(s.pool, pl, s.lastFromInit, p.Flow.Proto, p.Flow.SrcPort, p.Flow.DstPort)
				if st.Done() {
					e.ap |= apDone
				}
				if k := stateKey(st); k != e.ap&apKey {
					s.moveOpen(e, k) // the payload named the protocol
				}
			}
		}
	}
}

// What a packet handed to add shows of its transport header.
const (
	segHeader uint8 = 1 << iota // the transport header is there (flags are valid)
	segData                     // the segment carries payload
)

// flowIPLen returns the IP length p counts in its flow: that of the IP
// header its tuple comes from (the innermost), or for a fragment the
// fragmented layer's own (a fragment of a tunnel's outer datagram counts
// the outer fragment's length, as its later fragments can show no other).
func flowIPLen(p *decode.Packet) uint32 {
	if p.IsFragment {
		return p.IPLen[p.FragLayer]
	}
	if p.NumIP == 0 {
		return 0
	}
	return p.IPLen[p.NumIP-1]
}

// update adds one packet of n wire bytes (ipn IP bytes), seen at ts, to the flow of t
// and, with hosts, to its two hosts (the flow keeps their slab indices, and
// new flows had their slab lines prefetched); with hosts false the frame
// must not count for them (its IP layer is counted otherwise).
func (s *Shard) update(t *decode.Tuple, vlan, inner uint16, tun decode.Tunnel, flags, seg uint8, n, ipn uint32, ts int64, hosts bool) {
	e, srcIsB := s.add(t, vlan, inner, tun, flags, seg, 1, uint64(n), uint64(ipn), ts, ts)
	s.lastFromInit = srcIsB == e.initB
	if hosts {
		a, b := e.host[0], e.host[1]
		if srcIsB {
			a, b = b, a
		}
		s.hosts.credit(a, b, 1, uint64(n))
	} else {
		s.uncounted(e)
	}
}

// uncounted counts, for a frame of e that its hosts do not count, the
// hosts that did not fit in the table (Stats.HostsOverflow: one per side
// without a host, as every host update of such a flow counts).
func (s *Shard) uncounted(e *entry) {
	for _, j := range e.host {
		if j == 0 {
			s.hosts.overflow++
		}
	}
}

// updateMany adds pkts packets of bytes wire bytes (ipBytes IP bytes), seen from first to last,
// to the flow of t (fragments held back until their datagram's ports were known).
// Their IP layers were counted for hosts when they arrived.
func (s *Shard) updateMany(t *decode.Tuple, vlan, inner uint16, tun decode.Tunnel, flags uint8, pkts uint32, bytes, ipBytes uint64, first, last int64) {
	var seg uint8
	if flags != 0 {
		seg = segHeader // the datagram's head was read: its TCP flags are valid
	}
	e, _ := s.add(t, vlan, inner, tun, flags, seg, uint64(pkts), bytes, ipBytes, first, last)
	s.uncounted(e)
}

// add accounts pkts packets of bytes wire bytes and ipBytes IP bytes (seen from first to ts) to
// the flow of t. flags are the TCP flags and seg says (segHeader, segData)
// whether they are valid and the segment carried payload; fragments held
// back pass 0.
func (s *Shard) add(t *decode.Tuple, vlan, inner uint16, tun decode.Tunnel, flags, seg uint8, pkts, bytes, ipBytes uint64, first, ts int64) (*entry, bool) {
	k := &s.key
	srcIsB := makeKey(t, vlan, inner, k)
	h := s.hint &^ tagBit // the hash Prefetch computed for this key (PacketHashed)
	if h == 0 {
		h = k.hash()
	}
	s.hint = 0
	var e *entry
	i := s.find(k, h)
	if i != 0 {
		e = s.slot(i)
		if ts-e.first >= s.active {
			s.cut(i, e, EndActive, ts)
		}
	} else {
		i = s.insert(k, h, first)
		e = s.slot(i)
		e.tun = tun
		// The initiator is the SYN sender: a SYN-ACK seen first names its destination.
		e.initB = srcIsB
		if t.Proto == 6 && flags&(decode.TCPSyn|decode.TCPAck) == decode.TCPSyn|decode.TCPAck {
			e.initB = !srcIsB
		}
		if t.Proto == 6 {
			// A SYN or SYN-ACK starts the handshake; any other first
			// segment is a mid-stream pick-up, taken as established.
			e.state = StateEstablished
			if flags&decode.TCPSyn != 0 && seg != 0 {
				e.state = StateSynSent
			}
			if flags&(decode.TCPSyn|decode.TCPAck|decode.TCPFin|decode.TCPRst) == decode.TCPSyn && seg != 0 {
				e.ep[b2i(srcIsB)] = epSynFirst
			}
		}
		s.started(e, first)
		e.ap = s.portKey(e)
	}
	dir := 0
	if srcIsB {
		dir = 1
	}
	switch {
	case t.Proto == 6 && seg != 0:
		s.tcp(i, e, flags, seg&segData != 0, dir, srcIsB, ts)
	case t.Proto == 17:
		e.ep[dir] = epActive
	}
	s.last = i
	o := &s.open[e.ap&apKey]
	if e.pkts[0]+e.pkts[1] == 0 {
		o.flows++
	}
	o.pkts += pkts
	o.bytes += bytes
	e.pkts[dir] += pkts
	e.bytes[dir] += bytes
	e.ipBytes[dir] += ipBytes
	if ts > e.last {
		e.last = ts
	}
	if first < e.first {
		e.first = first
	}
	return e, srcIsB
}

// started records a new connection: for its hosts (flows initiated and
// answered) and for the initiator's scan signals.
func (s *Shard) started(e *entry, ts int64) {
	k := &e.key
	ini, res := 0, 1
	src, dst, dport := &k.A, &k.B, k.PortB
	if e.initB {
		ini, res = 1, 0
		src, dst, dport = &k.B, &k.A, k.PortA
	}
	if j := e.host[ini]; j != 0 {
		s.hosts.at(j).FlowsInitiated++
	}
	if j := e.host[res]; j != 0 {
		s.hosts.at(j).FlowsAnswered++
	}
	if s.mode >= ModeScanSample {
		if s.scanTick++; s.scanTick%scanSampleEvery != 0 {
			s.stats.DegradedScan++
			return
		}
	}
	slot := s.scan.connection(src, k.IPVersion, dst, dport, k.Proto, ts)
	s.marks.touch(s.scan, slot) // for the alert feed (scanfeed.go); nil: not wanted
}

// ScanTop returns the n sources with the most connections, distinct
// destination ports or distinct destination hosts ("connections", "ports",
// "hosts") in the scan window ending at the shard's clock.
func (s *Shard) ScanTop(n int, by string) []SourceStats { return s.scan.Top(s.now, n, by) }

// ScanSnapshot appends the scan signals of every tracked source to dst.
func (s *Shard) ScanSnapshot(dst []SourceStats) []SourceStats { return s.scan.Snapshot(s.now, dst) }

// tcp advances the TCP state of e for one segment with flags (and payload
// if data) sent in direction dir. A new SYN on a closed connection ends the
// old record and starts a new one in the same slot.
//
// State: SYN_SENT from a SYN or SYN-ACK until the handshake completes, i.e.
// the initiator ACKs the responder's SYN-ACK (or, in a simultaneous open,
// both sides have sent a SYN-ACK); then ESTABLISHED. A flow picked up
// mid-stream starts ESTABLISHED. A FIN from one side is FIN_WAIT, from both
// CLOSED; a RST is RESET. Beside it e.ep follows Zeek's endpoint states for
// conn_state.
func (s *Shard) tcp(i uint32, e *entry, flags uint8, data bool, dir int, srcIsB bool, ts int64) {
	if flags&(decode.TCPSyn|decode.TCPAck) == decode.TCPSyn && (e.state == StateClosed || e.state == StateReset) {
		s.cut(i, e, e.end, ts)
		s.freeApp(e) // a new connection takes a new state with its payload
		e.initB = srcIsB
		e.ap = s.portKey(e) // no packet counted yet: nothing to move
		s.started(e, ts)
		e.state = StateSynSent
		e.flags = [2]uint8{}
		e.ep = [2]uint8{}
		if flags&(decode.TCPFin|decode.TCPRst) == 0 {
			e.ep[dir] = epSynFirst
		}
		s.requeue(i, e, queueIdle)
	}
	e.flags[dir] |= flags
	fromInit := srcIsB == e.initB
	tcpEndpoints(&e.ep[dir], &e.ep[1-dir], flags, data, fromInit)
	switch {
	case flags&decode.TCPRst != 0:
		if e.state != StateReset && e.state != StateClosed {
			e.state, e.end = StateReset, EndRst
			s.requeue(i, e, queueLinger)
		}
	case flags&decode.TCPFin != 0:
		if e.state == StateClosed || e.state == StateReset {
			break
		}
		if e.flags[1-dir]&decode.TCPFin != 0 {
			e.state, e.end = StateClosed, EndFin
			s.requeue(i, e, queueLinger)
		} else {
			e.state = StateFinWait
		}
	case flags&(decode.TCPSyn|decode.TCPAck) == decode.TCPSyn && e.state == StateEstablished && fromInit && e.ep[1-dir]&epStateMask == epInactive:
		// A SYN after segments that made the flow look picked up mid-stream,
		// the responder silent so far: the handshake starts now (Zeek's
		// SYN_after_partial).
		e.state = StateSynSent
	case e.state == StateSynSent && flags&decode.TCPAck != 0 && e.ep[1-dir]&epSentSynAck != 0:
		// The initiator's ACK of the SYN-ACK, or the second SYN-ACK of a
		// simultaneous open.
		if flags&decode.TCPSyn != 0 || fromInit {
			e.state = StateEstablished
		}
	}
}

// insert takes a free slot for k, evicting the oldest idle flow at the bound.
func (s *Shard) insert(k *Key, h uint32, ts int64) uint32 {
	if int(s.stats.Active) >= s.cfg.MaxFlows {
		s.evict()
	}
	if int(s.stats.Active) >= 4*len(s.index) && len(s.index) < len(s.indexMem) {
		s.growIndex()
	}
	var i uint32
	if s.free != 0 {
		i = s.free
		s.free = s.lnk(i).next
	} else {
		i = s.used
		if int(i>>chunkBits) >= len(s.chunks) {
			// The last chunk holds only what MaxFlows leaves (slot 0 unused).
			lo := len(s.chunks) * chunkSize
			hi := lo + min(chunkSize, s.cfg.MaxFlows+1-lo)
			s.chunks = append(s.chunks, s.entryMem[lo:hi:hi])
			s.links = append(s.links, s.linkMem[lo:hi:hi])
		}
		s.used++
	}
	e := s.slot(i)
	*e = entry{key: *k, first: ts, last: ts, q: queueNone}
	s.lnk(i).hash = h
	e.host[0] = s.hosts.lookup(&k.A, k.IPVersion)
	e.host[1] = s.hosts.lookup(&k.B, k.IPVersion)
	s.place(i, h)
	s.stats.Active++
	s.stats.FlowsCreated++
	q := queueIdle
	if k.Proto == 17 {
		q = queueUDP
	}
	s.enqueue(i, e, q, s.now+s.timeouts[q])
	return i
}

// enqueue appends slot i (entry e, in no queue) to queue q, due at due.
func (s *Shard) enqueue(i uint32, e *entry, q int, due int64) {
	l := &s.queues[q]
	e.q = uint8(q)
	lk := s.lnk(i)
	lk.due = due
	lk.qprev, lk.qnext = l.tail, 0
	if l.tail != 0 {
		s.lnk(l.tail).qnext = i
	} else {
		l.head = i
	}
	l.tail = i
}

// unqueue takes slot i (entry e) out of its queue.
func (s *Shard) unqueue(i uint32, e *entry) {
	if e.q == queueNone {
		return
	}
	l := &s.queues[e.q]
	lk := s.lnk(i)
	if lk.qprev != 0 {
		s.lnk(lk.qprev).qnext = lk.qnext
	} else {
		l.head = lk.qnext
	}
	if lk.qnext != 0 {
		s.lnk(lk.qnext).qprev = lk.qprev
	} else {
		l.tail = lk.qprev
	}
	e.q, lk.qprev, lk.qnext = queueNone, 0, 0
}

// requeue moves e to queue q.
func (s *Shard) requeue(i uint32, e *entry, q int) {
	if int(e.q) == q {
		return
	}
	s.unqueue(i, e)
	s.enqueue(i, e, q, max(e.last, s.now)+s.timeouts[q])
}

// record copies e into an oriented Record, all but r.App (emit writes it),
// field by field: r is a slot of the ended batch, whose App arena is zero
// past its used bytes (app.State.CopyOver), and assigning a whole Record
// would write its every line, the empty arena's five too.
func (e *entry) record(r *Record, end EndReason) {
	k := &e.key
	a, b := 0, 1
	if e.initB {
		a, b = 1, 0
		r.Src, r.Dst, r.SrcPort, r.DstPort = k.B, k.A, k.PortB, k.PortA
	} else {
		r.Src, r.Dst, r.SrcPort, r.DstPort = k.A, k.B, k.PortA, k.PortB
	}
	r.VLAN, r.InnerVLAN, r.Proto, r.IPVersion = k.VLAN, k.InnerVLAN, k.Proto, k.IPVersion
	r.Tunnel, r.State, r.ConnState, r.End = e.tun, e.state, e.connState(), end
	r.FlagsTx, r.FlagsRx = e.flags[a], e.flags[b]
	r.PacketsTx, r.PacketsRx = e.pkts[a], e.pkts[b]
	r.BytesTx, r.BytesRx = e.bytes[a], e.bytes[b]
	r.IPBytesTx, r.IPBytesRx = e.ipBytes[a], e.ipBytes[b]
	r.First, r.Last = e.first, e.last
	if r.AppLabel != "" {
		r.AppLabel = "" // no write barrier for the "" it almost always holds
	}
	r.AppLabelGuess = false
}

// emit appends the record of e (slot i) to the ended batch, handing a full
// batch to onEnd.
func (s *Shard) emit(i uint32, e *entry, end EndReason) {
	if e.pkts[0]+e.pkts[1] == 0 {
		return
	}
	// s.ended never grows past endBuffer (deliver below): extend it
	// without zeroing; e.record and appOver write the whole record. Every
	// Record of the buffers it uses (its own, made, or those SetEndSwap's
	// swap gives back, which held records that emit wrote) has its App
	// arena zero past App's used bytes, as a zeroed Record has.
	s.ended = s.ended[:len(s.ended)+1]
	r := &s.ended[len(s.ended)-1]
	e.record(r, end)
	if end != EndActive {
		s.dropApp(e) // parse what a split message left collected
	}
	s.appOver(e, &r.App)
	s.protos.addState(&r.App, r.PacketsTx+r.PacketsRx, r.BytesTx+r.BytesRx)
	s.stats.FlowsEnded++
	// Its hosts counted its frames as they came (update); a side without a
	// host counts as overflow, twice (as sender and as receiver).
	s.uncounted(e)
	s.uncounted(e)
	if len(s.ended) >= s.endBuffer {
		s.deliver()
	}
}

func (s *Shard) deliver() {
	if len(s.ended) == 0 {
		return
	}
	if s.swap != nil {
		e := s.swap(s.ended)
		if cap(e) < s.endBuffer {
			e = make([]Record, 0, s.endBuffer)
		}
		s.ended = e[:0]
		return
	}
	if s.onEnd != nil {
		s.onEnd(s.ended)
	}
	s.ended = s.ended[:0]
}

// SetEndSwap makes the shard hand each batch of ended flows to swap, which
// keeps the slice, and go on in the empty one swap returns (one of
// capacity under EndBuffer is replaced), instead of calling onEnd with a
// buffer the shard reuses: an exporter that queues the batch takes it as
// it is, where onEnd's contract made it copy every record (about 600
// bytes each; under a flood of new flows, a copy per packet). The buffer
// swap returns is a new one or one that held records of a shard (or
// copies of them), which nobody changed: the shard writes over their
// lines that it needs, not the rest (see emit). Call it before the first
// packet, from the shard's goroutine.
func (s *Shard) SetEndSwap(swap func([]Record) []Record) { s.swap = swap }

// EndBuffer is the capacity of the buffer the shard writes ended flows
// into (SetEndSwap); a batch never holds more.
func (s *Shard) EndBuffer() int { return s.endBuffer }

// cut exports e's counters so far with reason end and starts a new record
// in the same slot, keeping the connection's key, initiator and state.
func (s *Shard) cut(i uint32, e *entry, end EndReason, ts int64) {
	s.emit(i, e, end)
	s.closeOpen(e)
	e.ap = e.ap&apDone | s.curKey(e) // emit may have parsed what the state collected
	e.pkts, e.bytes, e.ipBytes = [2]uint64{}, [2]uint64{}, [2]uint64{}
	e.first, e.last = ts, ts
	e.end = EndNone
}

// remove exports e with reason end and frees its slot.
func (s *Shard) remove(i uint32, e *entry, end EndReason) {
	s.emit(i, e, end)
	s.closeOpen(e)
	lk := s.lnk(i)
	s.unplace(i, lk.hash)
	s.unqueue(i, e)
	s.freeApp(e)
	lk.next = s.free
	s.free = i
	s.stats.Active--
}

// evict removes the flow that has waited longest: a closed one first, then the
// oldest of the idle queues' heads.
func (s *Shard) evict() {
	q := queueLinger
	victim := s.queues[queueLinger].head
	if victim == 0 {
		var bestDue int64
		for c := range queueLinger {
			if h := s.queues[c].head; h != 0 && (victim == 0 || s.lnk(h).due < bestDue) {
				victim, bestDue, q = h, s.lnk(h).due, c
			}
		}
	}
	if victim == 0 {
		panic("BUG: flow table full with empty expiry queues")
	}
	s.stats.FlowsEvicted++
	s.remove(victim, s.slot(victim), EndEviction)
	s.prefetchVictims(q)
}

// prefetchVictims starts loading what the next evictions from queue q (the
// one that just lost its head) read: the index bucket of its new head
// (unplace; the head's link was prefetched by the previous eviction from
// q), the head's detection state, and both lines of the entry and the
// link of the flow behind it (emit reads the whole entry). The other queues' heads did not move, and a
// flow's hosts are not read when it ends.
func (s *Shard) prefetchVictims(q int) {
	h := s.queues[q].head
	if h == 0 {
		return
	}
	lk := s.lnk(h)
	b := uintptr(unsafe.Pointer(&s.index[lk.hash&s.mask]))
	if d := s.slot(h).det; d != 0 {
		// The head's detection state, which its eviction's emit copies
		// into the record (and releases): its head's lines, read from the
		// head's entry (prefetched by the previous eviction from q).
		a := uintptr(unsafe.Pointer(s.app(d)))
		prefetch3(a, a+64, a+app.HeadBytes-1)
	}
	if n := lk.qnext; n != 0 {
		e := uintptr(unsafe.Pointer(s.slot(n)))
		prefetch4(b, e, e+64, uintptr(unsafe.Pointer(s.lnk(n))))
		return
	}
	prefetch(b)
}

// Expire ends every flow whose timeout passed by now (Unix nanoseconds; the
// packet clock for replay, the ring's clock live) and hands ended flows to
// onEnd. Call it between batches.
func (s *Shard) Expire(now int64) {
	if now > s.now {
		s.now = now
	}
	now = s.now
	if s.mode >= ModeEmergency {
		s.emergencyExpire(now)
	}
	for q := range s.queues {
		l := &s.queues[q]
		for l.head != 0 {
			i := l.head
			if s.lnk(i).due > now {
				break
			}
			e := s.slot(i)
			if q == queueLinger {
				s.remove(i, e, e.end)
				continue
			}
			if due := e.last + s.timeouts[q]; due > now {
				s.unqueue(i, e) // re-armed at the tail
				s.enqueue(i, e, q, due)
				continue
			}
			s.remove(i, e, EndIdle)
		}
	}
	s.frags.expire(now, s)
	s.deliver()
}

// Flush ends every open flow with reason end (end of capture, shutdown) and
// hands them to onEnd.
func (s *Shard) Flush(end EndReason) {
	s.frags.flush(s)
	for i := uint32(1); i < s.used; i++ {
		e := s.slot(i)
		if e.q == queueNone {
			continue
		}
		r := end
		if e.end != EndNone { // closed or reset, still lingering
			r = e.end
		}
		s.remove(i, e, r)
	}
	s.deliver()
}

// Snapshot appends a Record (End = EndNone) for every open flow to dst.
// With detail the records carry the whole detection state (App); without,
// only the protocol's name (AppLabel), which costs the worker far less
// memory traffic per flow.
func (s *Shard) Snapshot(dst []Record, detail bool) []Record {
	for i := uint32(1); i < s.used; i++ {
		e := s.slot(i)
		if e.q == queueNone || e.pkts[0]+e.pkts[1] == 0 {
			continue
		}
		dst = append(dst, Record{})
		r := &dst[len(dst)-1]
		e.record(r, EndNone)
		switch {
		case detail:
			s.appOf(i, e, &r.App)
		case e.det != 0:
			st := s.app(e.det)
			r.AppLabel, r.AppLabelGuess = st.Name(), st.Guess
		default:
			var st app.State
			s.appOf(i, e, &st)
			r.AppLabel, r.AppLabelGuess = st.Name(), st.Guess
		}
	}
	return dst
}
