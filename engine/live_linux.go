package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netsentry/netsentry/bpf"
	"github.com/netsentry/netsentry/flowtable"
)

const (
	pollTimeoutMs = 100         // an idle worker wakes this often to expire flows
	housekeeping  = time.Second // kernel statistics and interface checks
	// yieldEvery: a worker passes through the Go scheduler this often
	// (runtime.Gosched), well within the runtime's 10 ms preemption
	// slice. A worker that never yields is preempted every 10 ms (a
	// signal, or its P taken from under its poll(2)), and each preemption
	// sets the runtime's sysmon thread back to waking every 20 µs for a
	// millisecond or more: 12 % of the daemon's CPU in the steady shape
	// of make bench-live. A yield of the locked thread costs two thread
	// hand-offs, like a preemption, but leaves sysmon asleep.
	yieldEvery = 4 * time.Millisecond
)

// queueCounters are one queue's published counters: written by its worker
// (per block or per second, never per frame), read by Stats from any
// goroutine. Padded so that two workers never share a cache line.
type queueCounters struct {
	packets, bytes           atomic.Uint64
	kpackets, kdrops, freeze atomic.Uint64
	downs, reattach          atomic.Uint64
	_                        [64]byte
}

// liveQueue is one worker: queue idx of every interface.
type liveQueue struct {
	idx   int
	cpu   int
	rings []*ring
	w     *Worker
	wk    *walker
	pfds  []unix.PollFd
	c     *queueCounters
}

// Live is a running live capture: for each interface a fan-out group of
// TPACKET_V3 rings, and one pinned worker per queue.
type Live struct {
	cfg      LiveConfig
	setup    ringSetup
	filters  map[uint16][]unix.SockFilter
	fanout   *bpf.Fanout
	mode     int      // PACKET_FANOUT_EBPF or PACKET_FANOUT_HASH
	groups   []uint16 // fan-out group id per interface
	queues   []*liveQueue
	counters []queueCounters
	efd      int
	stopping atomic.Bool
	modeDesc string
	runOnce  sync.Once
	wg       sync.WaitGroup
	closed   bool
}

// NewLive opens every socket and ring, joins the fan-out groups and
// prepares one worker per queue; Run starts them. Sockets are created in the
// network namespace of the calling thread. An interface that does not exist
// there is an error wrapping ErrNoInterface that names those that do.
func NewLive(cfg LiveConfig) (l *Live, err error) {
	if len(cfg.Interfaces) == 0 {
		return nil, errors.New("open live capture: no interface")
	}
	if cfg.NewShard == nil {
		return nil, errors.New("open live capture: no shard constructor")
	}
	if err := checkInterfaces(cfg.Interfaces); err != nil {
		return nil, err
	}
	cpus, err := workerCPUs(cfg.CPUs)
	if err != nil {
		return nil, err
	}
	n := cfg.Queues
	if n <= 0 {
		n = len(cpus)
	}
	snap := cfg.Snaplen
	if snap <= 0 {
		snap = 262144
	}
	ringMB := max(cfg.RingMB, 1)
	perQueue := (ringMB << 20) / (n * len(cfg.Interfaces))
	l = &Live{
		cfg:      cfg,
		setup:    ringSetup{geo: ringGeometry(snap, cfg.BatchSize, perQueue, cfg.RetireMs), promisc: cfg.Promisc},
		filters:  map[uint16][]unix.SockFilter{},
		counters: make([]queueCounters, n),
		efd:      -1,
	}
	opened := l // the named result is nil on the error returns below
	defer func() {
		if err != nil {
			opened.Close()
		}
	}()
	l.efd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("create eventfd: %w", err)
	}
	l.mode = unix.PACKET_FANOUT_HASH
	l.modeDesc = "hash (kernel PACKET_FANOUT_HASH)"
	if n > 1 && !cfg.FanoutHash {
		if f, ferr := bpf.LoadFanout(n); ferr != nil {
			l.logf("fan-out: eBPF program not loaded, using PACKET_FANOUT_HASH: %v", ferr)
			l.modeDesc = "hash (eBPF program did not load: " + ferr.Error() + ")"
		} else {
			l.fanout, l.mode, l.modeDesc = f, unix.PACKET_FANOUT_EBPF, "ebpf (symmetric 5-tuple)"
		}
	}
	if n == 1 {
		l.modeDesc = "none (one queue)"
	}
	for q := 0; q < n; q++ {
		shard, err := cfg.NewShard(q)
		if err != nil {
			return nil, fmt.Errorf("create shard %d: %w", q, err)
		}
		w := NewWorker(shard)
		l.queues = append(l.queues, &liveQueue{idx: q, cpu: cpus[q%len(cpus)], w: w,
			wk: newWalker(w, snap), c: &l.counters[q]})
	}
	l.groups = make([]uint16, len(cfg.Interfaces))
	for i, ifname := range cfg.Interfaces {
		for q := 0; q < n; q++ {
			r, err := l.openQueueRing(i, ifname, q == 0)
			if err != nil {
				return nil, err
			}
			l.queues[q].rings = append(l.queues[q].rings, r)
		}
	}
	return l, nil
}

// workerCPUs returns the CPUs workers may be pinned to: want, each checked
// against the process's CPU set, or that whole set.
func workerCPUs(want []int) ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("read cpu affinity: %w", err)
	}
	var allowed []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			allowed = append(allowed, c)
		}
	}
	if len(allowed) == 0 {
		return nil, errors.New("read cpu affinity: empty cpu set")
	}
	if len(want) == 0 {
		return allowed, nil
	}
	for _, c := range want {
		if c < 0 || c >= len(set)*64 || !set.IsSet(c) {
			return nil, fmt.Errorf("pin workers: cpu %d is not in the process's cpu set %v", c, allowed)
		}
	}
	return want, nil
}

func (l *Live) logf(format string, args ...any) {
	if l.cfg.Logf != nil {
		l.cfg.Logf(format, args...)
	}
}

// filterFor returns the compiled filter for link type link (compiled once).
func (l *Live) filterFor(link uint16) ([]unix.SockFilter, error) {
	if f, ok := l.filters[link]; ok {
		return f, nil
	}
	var ins []bpf.Instruction
	if l.cfg.Filter == "" {
		ins = bpf.SnaplenProgram(l.setup.geo.Snaplen)
	} else {
		var err error
		if ins, err = bpf.CompileFilter(l.cfg.Filter, link, l.setup.geo.Snaplen); err != nil {
			return nil, err
		}
	}
	f := make([]unix.SockFilter, len(ins))
	for i, in := range ins {
		f[i] = unix.SockFilter{Code: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	l.filters[link] = f
	return f, nil
}

// openQueueRing opens one queue's ring on interface i and joins the
// interface's fan-out group (creating it when first).
func (l *Live) openQueueRing(i int, ifname string, first bool) (*ring, error) {
	s := l.setup
	// The filter depends on the link type, known once the socket exists:
	// open, look, then attach before bind (openRing does it in that order).
	link, err := probeLink(ifname)
	if err != nil {
		return nil, err
	}
	if s.filter, err = l.filterFor(link); err != nil {
		return nil, err
	}
	r, err := openRing(ifname, &s)
	if err != nil {
		return nil, err
	}
	if len(l.queues) == 1 {
		return r, nil
	}
	if first {
		id, err := r.joinFanout(0, l.mode, true)
		if err == nil && l.mode == unix.PACKET_FANOUT_EBPF {
			if err = r.setFanoutProgram(l.fanout); err != nil {
				// Too late to change this group's mode: start again in hash mode.
				r.close()
				l.logf("fan-out: eBPF program not accepted, using PACKET_FANOUT_HASH: %v", err)
				l.modeDesc = "hash (eBPF program not accepted: " + err.Error() + ")"
				l.mode = unix.PACKET_FANOUT_HASH
				l.fanout.Close()
				l.fanout = nil
				return l.openQueueRing(i, ifname, true)
			}
		}
		if err != nil {
			r.close()
			return nil, fmt.Errorf("capture on %s: %w", ifname, err)
		}
		l.groups[i] = id
		return r, nil
	}
	if _, err := r.joinFanout(l.groups[i], l.mode, false); err != nil {
		r.close()
		return nil, fmt.Errorf("capture on %s: %w", ifname, err)
	}
	if l.mode == unix.PACKET_FANOUT_EBPF {
		if err := r.setFanoutProgram(l.fanout); err != nil {
			r.close()
			return nil, fmt.Errorf("capture on %s: %w", ifname, err)
		}
	}
	return r, nil
}

// probeLink returns the link type of ifname.
func probeLink(ifname string) (uint16, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open packet socket: %w", err)
	}
	defer unix.Close(fd)
	return linkType(fd, ifname)
}

// FanoutMode describes how frames are spread over the queues.
func (l *Live) FanoutMode() string { return l.modeDesc }

// Geometry describes the ring of each queue, for the startup log line.
func (l *Live) Geometry() string {
	g := l.setup.geo
	return fmt.Sprintf("%d queues x %d interfaces, ring %d blocks x %d KiB, frame %d B, retire %d ms",
		len(l.queues), len(l.cfg.Interfaces), g.Blocks, g.BlockSize>>10, g.FrameSize, g.RetireMs)
}

// Workers returns the workers, one per queue. Read their counters and
// shards only after Run returned.
func (l *Live) Workers() []*Worker {
	ws := make([]*Worker, len(l.queues))
	for i, q := range l.queues {
		ws[i] = q.w
	}
	return ws
}

// Stats returns each queue's counters. It is safe to call from any
// goroutine at any time; kernel figures are at most about a second old
// while running and exact after Run returned.
func (l *Live) Stats() []QueueStats {
	out := make([]QueueStats, len(l.queues))
	for i, q := range l.queues {
		c := q.c
		out[i] = QueueStats{Queue: i, CPU: q.cpu, Packets: c.packets.Load(), Bytes: c.bytes.Load(),
			KernelPackets: c.kpackets.Load(), KernelDrops: c.kdrops.Load(), Freezes: c.freeze.Load(),
			LinkDowns: c.downs.Load(), Reattached: c.reattach.Load()}
	}
	return out
}

// Run captures until ctx is done, then stops each socket's intake, walks
// every frame its ring holds, reads its final kernel statistics (so that
// each queue's KernelPackets = Packets + KernelDrops exactly; see finish)
// and flushes every open flow with reason shutdown, each worker on its own
// goroutine. Run returns when all of that is done. Run may be called once.
func (l *Live) Run(ctx context.Context) error {
	started := false
	l.runOnce.Do(func() {
		started = true
		for _, q := range l.queues {
			l.wg.Add(1)
			go l.runQueue(q)
		}
	})
	if !started {
		return errors.New("run live capture: already run")
	}
	<-ctx.Done()
	l.stop()
	l.wg.Wait()
	return nil
}

func (l *Live) stop() {
	l.stopping.Store(true)
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(l.efd, one[:])
}

// runQueue is one worker's loop: pinned to its CPU, it walks every ready
// block of its rings, hands each block back at once, and sleeps in poll(2)
// when nothing is ready.
func (l *Live) runQueue(q *liveQueue) {
	defer l.wg.Done()
	// The thread stays locked until the goroutine exits, so the pinned
	// thread is discarded rather than handed back to the scheduler.
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(q.cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		l.logf("queue %d: pin to cpu %d: %v", q.idx, q.cpu, err)
	}
	next := time.Now().Add(housekeeping)
	yield := time.Now().Add(yieldEvery)
	for !l.stopping.Load() {
		if !l.drain(q) {
			l.wait(q)
		}
		now := time.Now()
		if now.After(yield) {
			yield = now.Add(yieldEvery)
			runtime.Gosched()
		}
		if now.After(next) {
			next = now.Add(housekeeping)
			l.housekeep(q)
		}
	}
	l.finish(q)
	q.w.Shard().Flush(flowtable.EndShutdown)
}

// finish ends q's capture so that, for every socket, the frames the kernel
// counted (tp_packets) are exactly those walked plus those dropped
// (tp_drops):
//  1. a drop-all filter stops the kernel from handing the sockets more
//     frames (a fan-out member cannot leave its group or be re-bound);
//  2. settle waits for the frames already being received to be written;
//  3. every block handed to user space is walked, and the statistics are
//     read, until the identity holds: the kernel's current, partly filled
//     block reaches user space when its retire timer fires (RetireMs after
//     it was opened), so this takes at most about one timeout.
//
// The wait is bounded; a socket whose count still differs is logged.
func (l *Live) finish(q *liveQueue) {
	for _, r := range q.rings {
		if r.mem == nil {
			continue
		}
		if err := r.dropAll(); err != nil {
			l.logf("queue %d: %v", q.idx, err)
		}
	}
	if err := settle(); err != nil {
		l.logf("queue %d: wait for frames in flight: %v", q.idx, err)
	}
	retire := time.Duration(l.setup.geo.RetireMs) * time.Millisecond
	deadline := time.Now().Add(4*retire + 100*time.Millisecond)
	for {
		l.drain(q)
		l.readStats(q)
		done := true
		for _, r := range q.rings {
			if r.mem != nil && !r.balanced() {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(retire / 10)
	}
	for _, r := range q.rings {
		if r.mem != nil && !r.balanced() {
			l.logf("queue %d: %s: the kernel counted %d frames, %d were captured and %d dropped",
				q.idx, r.ifname, r.kpackets, r.counted, r.kdrops)
		}
	}
}

// drain walks every ready block of q's rings (at most one lap of each ring)
// and reports whether there was any.
func (l *Live) drain(q *liveQueue) bool {
	busy := false
	for _, r := range q.rings {
		if r.mem == nil {
			continue
		}
		for k := 0; k < r.geo.Blocks; k++ {
			b := r.block(r.cur)
			if !ready(b) {
				break
			}
			n, by, last := q.wk.walk(b, r.link)
			release(b)
			r.counted += uint64(n)
			r.cur++
			if r.cur == r.geo.Blocks {
				r.cur = 0
			}
			q.c.packets.Add(uint64(n))
			q.c.bytes.Add(by)
			if last == 0 {
				last = time.Now().UnixNano()
			}
			q.w.Shard().Pressure(r.backlog())
			q.w.EndBatch(last)
			busy = true
		}
	}
	return busy
}

// wait sleeps in poll(2) until a ring has a block, the capture stops, or the
// timeout passes (then flows are expired by the wall clock).
func (l *Live) wait(q *liveQueue) {
	q.pfds = q.pfds[:0]
	for _, r := range q.rings {
		if r.mem != nil {
			q.pfds = append(q.pfds, unix.PollFd{Fd: int32(r.fd), Events: unix.POLLIN | unix.POLLERR})
		}
	}
	q.pfds = append(q.pfds, unix.PollFd{Fd: int32(l.efd), Events: unix.POLLIN})
	n, err := unix.Poll(q.pfds, pollTimeoutMs)
	if err != nil && !errors.Is(err, unix.EINTR) {
		l.logf("queue %d: poll: %v", q.idx, err)
		time.Sleep(pollTimeoutMs * time.Millisecond)
	}
	if n <= 0 {
		// Nothing waiting: the degradation level may step back (its calm
		// seconds run on the shard's clock, which Expire advances).
		q.w.Shard().Pressure(0)
		q.w.EndBatch(time.Now().UnixNano())
		return
	}
	j := 0
	for _, r := range q.rings {
		if r.mem == nil {
			continue
		}
		if q.pfds[j].Revents&unix.POLLERR != 0 {
			if err := r.sockErr(); errors.Is(err, unix.ENETDOWN) {
				if !r.down {
					r.down = true
					q.c.downs.Add(1)
					l.logf("queue %d: %s went down; capturing again when it is up", q.idx, r.ifname)
				}
			} else if err != nil {
				l.logf("queue %d: %s: %v", q.idx, r.ifname, err)
			}
		}
		j++
	}
}

// housekeep reads the kernel statistics and re-attaches rings whose
// interface was deleted and created again (a new ifindex); an interface
// that only went down and up is re-attached by the kernel itself.
func (l *Live) housekeep(q *liveQueue) {
	l.readStats(q)
	for k, r := range q.rings {
		if r.mem != nil {
			idx, err := ifIndex(r.fd, r.ifname)
			if err == nil && idx == r.ifindex {
				if r.down && interfaceUp(r.fd, r.ifname) {
					r.down = false
					l.logf("queue %d: %s is up again", q.idx, r.ifname)
				}
				continue
			}
			// Gone or re-created: let go of the old socket (and its share of
			// the old fan-out group) and try to open a new one.
			if !r.down {
				q.c.downs.Add(1)
			}
			l.logf("queue %d: %s was removed; re-attaching when it is back", q.idx, r.ifname)
			r.close()
			r.down = true
		}
		i := l.ifaceIndex(r.ifname)
		// Joining by id creates the group again once its old members are
		// all gone; until then the join fails and is retried next time.
		nr, err := l.openQueueRing(i, r.ifname, false)
		if err != nil {
			continue // not back yet, or the old group still has members
		}
		q.rings[k] = nr
		q.c.reattach.Add(1)
		l.logf("queue %d: re-attached to %s", q.idx, r.ifname)
	}
}

func (l *Live) ifaceIndex(name string) int {
	for i, n := range l.cfg.Interfaces {
		if n == name {
			return i
		}
	}
	panic("BUG: ring on an interface not in the config")
}

func interfaceUp(fd int, name string) bool {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return false
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return false
	}
	return ifr.Uint16()&unix.IFF_UP != 0
}

// readStats adds the kernel's counters since the last read.
func (l *Live) readStats(q *liveQueue) {
	for _, r := range q.rings {
		if r.mem == nil {
			continue
		}
		p, d, f, err := r.stats()
		if err != nil {
			continue
		}
		r.kpackets += p
		r.kdrops += d
		q.c.kpackets.Add(p)
		q.c.kdrops.Add(d)
		q.c.freeze.Add(f)
	}
}

// Close closes every socket and unmaps every ring. Call it after Run
// returned (or instead of Run).
func (l *Live) Close() error {
	if l.closed {
		return nil
	}
	l.closed = true
	var err error
	for _, q := range l.queues {
		for _, r := range q.rings {
			err = errors.Join(err, r.close())
		}
	}
	if l.fanout != nil {
		err = errors.Join(err, l.fanout.Close())
	}
	if l.efd >= 0 {
		unix.Close(l.efd)
	}
	return err
}
