package trafficgen

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"
)

// Defaults used when a Config field is zero.
const (
	DefaultPackets = 1_000_000
	DefaultFlows   = 100_000
)

// DefaultStart is the time of the first packet when Config.Start is zero.
var DefaultStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Config says what to generate. Zero fields take the defaults above.
type Config struct {
	// Packets is the exact number of packets to write.
	Packets int
	// Flows is the exact number of flows (distinct 5-tuples) to write.
	Flows int
	// Seed seeds the PCG random source; the same Config gives the same bytes.
	Seed uint64
	// Start is the time of the first packet.
	Start time.Time
	// Progress, if not nil, is called on the generating goroutine every
	// 65,536 packets and once at the end with the packets written so far.
	Progress func(written, total int)
}

func (c Config) withDefaults() Config {
	if c.Packets == 0 {
		c.Packets = DefaultPackets
	}
	if c.Flows == 0 {
		c.Flows = DefaultFlows
	}
	if c.Start.IsZero() {
		c.Start = DefaultStart
	}
	return c
}

// Direction indexes Flow.Packets and Flow.Bytes.
const (
	ToServer = 0 // sent by the client (the flow's initiator)
	ToClient = 1 // sent by the server
)

// Flow is what the generator wrote for one flow.
type Flow struct {
	Proto          uint8 // 6 (TCP) or 17 (UDP)
	Client, Server netip.AddrPort
	VLAN           uint16    // 802.1Q id, 0 when untagged
	Packets        [2]int    // by direction: ToServer, ToClient
	Bytes          [2]uint64 // frame bytes by direction
	First, Last    time.Time
	End            string // "fin" or "rst" for TCP, "" for UDP
}

// Truth is the ground truth of a generated trace: exactly what was written.
type Truth struct {
	Packets   int
	Flows     int
	TCPFlows  int
	UDPFlows  int    // including the DNS flows
	DNSFlows  int    // UDP flows made of one DNS query and its answer
	RSTFlows  int    // TCP flows that end with a RST instead of FINs
	WireBytes uint64 // sum of frame lengths, as tcpdump, tshark and NetSentry count bytes
	FileBytes int64  // size of the pcap written, headers included

	IPv6Packets int
	VLANPackets int
	MinFrame    int // smallest frame length
	MaxFrame    int // largest frame length

	// MaxFlowPackets is the size of the largest flow, in packets.
	MaxFlowPackets int
	// PeakOpenFlows is the most flows that were between their first and
	// last packet at one time.
	PeakOpenFlows int
	First, Last   time.Time

	// FlowList holds every flow, indexed by flow id: the order in which
	// flows were planned, not the order of their first packets.
	FlowList []Flow
}

// Duration is the time between the first and the last packet.
func (t *Truth) Duration() time.Duration { return t.Last.Sub(t.First) }

// String summarises the truth in one line.
func (t *Truth) String() string {
	return fmt.Sprintf("%d packets, %d flows (%d TCP of which %d RST, %d UDP of which %d DNS), %d wire bytes, "+
		"%.1f%% IPv6, %.1f%% VLAN, frames %d..%d, largest flow %d packets, peak %d open flows, %.1f s",
		t.Packets, t.Flows, t.TCPFlows, t.RSTFlows, t.UDPFlows, t.DNSFlows, t.WireBytes,
		pct(t.IPv6Packets, t.Packets), pct(t.VLANPackets, t.Packets), t.MinFrame, t.MaxFrame,
		t.MaxFlowPackets, t.PeakOpenFlows, t.Duration().Seconds())
}

func pct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

// ErrTooFewPackets is returned (wrapped) when Config.Packets cannot hold the
// smallest possible version of Config.Flows flows.
var ErrTooFewPackets = errors.New("too few packets for the flows")

// Generate writes a trace described by cfg to w and returns what it wrote.
func Generate(w io.Writer, cfg Config) (*Truth, error) {
	cfg = cfg.withDefaults()
	if cfg.Packets < 0 || cfg.Flows < 1 {
		return nil, fmt.Errorf("generate trace: want packets >= 0 and flows >= 1, have %d and %d", cfg.Packets, cfg.Flows)
	}
	if cfg.Flows > maxFlows {
		return nil, fmt.Errorf("generate trace: at most %d flows, have %d", maxFlows, cfg.Flows)
	}
	g := newGen(cfg)
	if err := g.plan(); err != nil {
		return nil, fmt.Errorf("generate trace: %w", err)
	}
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 1<<20)
	if err := g.write(bw); err != nil {
		return nil, fmt.Errorf("generate trace: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("generate trace: %w", err)
	}
	t := g.truth()
	t.FileBytes = cw.n
	return t, nil
}

// WriteFile writes a trace described by cfg to a new file at path.
func WriteFile(path string, cfg Config) (*Truth, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create trace: %w", err)
	}
	t, err := Generate(f, cfg)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close trace %s: %w", path, cerr)
	}
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	return t, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeFileHeader writes the 24-byte classic pcap header (little-endian,
// microseconds, Ethernet).
func writeFileHeader(w io.Writer) error {
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 262144) // snaplen
	binary.LittleEndian.PutUint32(h[20:], 1)      // LINKTYPE_ETHERNET
	_, err := w.Write(h[:])
	return err
}
