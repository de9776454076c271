package flowtable

// Overload degradation. When the flow table is full or the worker falls
// behind its ring, a shard sheds work in a fixed order rather than leave
// the kernel to drop frames at random (Suricata's flow "emergency mode" is
// the model). Each level includes the ones before it:
//
//  1. ModeNoDetect: flows whose first payload comes now get no detection
//     state; they are reported by their port guess (DegradedDetect).
//  2. ModeScanSample: one new connection in scanSampleEvery feeds the scan
//     tracker (DegradedScan counts the others), so the signals are
//     under-counted by about that factor while it lasts.
//  3. ModeEmergency: idle flows end after an eighth of their idle timeout
//     (at least a second) instead of waiting for the table bound to evict
//     them (DegradedEmergency; the records say "eviction").
//
// Packet and byte counters are never shed: every frame is still counted in
// its flow and hosts. The owner of the shard reports the pressure between
// batches (Pressure); replay never does, so a file is always accounted in
// full.

// Mode is a shard's degradation level (see the list above).
type Mode uint8

// Degradation levels, in the order they are taken.
const (
	ModeNormal Mode = iota
	ModeNoDetect
	ModeScanSample
	ModeEmergency
	NumModes
)

var modeNames = [...]string{"normal", "no_detect", "scan_sample", "emergency"}

// String names the mode as /metrics and the API show it.
func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return "unknown"
}

const (
	// scanSampleEvery: in ModeScanSample one new connection in this many is
	// fed to the scan tracker.
	scanSampleEvery = 8
	// emergencyDiv divides the idle timeouts in ModeEmergency.
	emergencyDiv = 8
	// emergencyBudget bounds the queue heads one Expire looks at for the
	// emergency timeouts: the work per batch stays bounded.
	emergencyBudget = 256
	// calmNanos is how long (packet time) the pressure must stay below the
	// current level before the shard steps one level back.
	calmNanos = int64(1e9)
)

// Pressure sets the shard's degradation level from what its owner sees
// between batches: backlog is the share of the ring (0 to 1) that was
// waiting after this batch. A full table (flows evicted since the last
// call) calls for ModeNoDetect, a quarter of the ring waiting too, half of
// it ModeScanSample, three quarters ModeEmergency. The level rises at
// once and falls one step per calm second.
func (s *Shard) Pressure(backlog float64) {
	want := ModeNormal
	if s.stats.FlowsEvicted != s.evictSeen {
		s.evictSeen = s.stats.FlowsEvicted
		want = ModeNoDetect
	}
	switch {
	case backlog >= 0.75:
		want = ModeEmergency
	case backlog >= 0.5:
		want = max(want, ModeScanSample)
	case backlog >= 0.25:
		want = max(want, ModeNoDetect)
	}
	switch {
	case want >= s.mode:
		if want > s.mode {
			s.stats.DegradedEntered[want]++
		}
		s.mode, s.calmSince = want, s.now
	case s.now-s.calmSince >= calmNanos:
		s.mode--
		s.calmSince = s.now
	}
}

// Mode returns the shard's current degradation level.
func (s *Shard) Mode() Mode { return s.mode }

// emergencyExpire ends idle flows whose emergency timeout passed, looking
// at no more than emergencyBudget queue heads: a head still active is
// re-armed at its queue's tail with its normal timeout.
func (s *Shard) emergencyExpire(now int64) {
	n := 0
	for q := range queueLinger {
		l := &s.queues[q]
		short := max(s.timeouts[q]/emergencyDiv, int64(1e9))
		for l.head != 0 && n < emergencyBudget {
			n++
			i := l.head
			e := s.slot(i)
			if e.last+short > now {
				s.unqueue(i, e)
				s.enqueue(i, e, q, e.last+s.timeouts[q])
				if l.head == i { // alone in its queue
					break
				}
				continue
			}
			s.stats.DegradedEmergency++
			s.remove(i, e, EndEviction)
		}
	}
}
