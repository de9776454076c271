package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/netsentry/netsentry/bpf"
	"github.com/netsentry/netsentry/decode"
)

// Offsets in struct tpacket_block_desc (linux/if_packet.h): version,
// offset_to_priv, then struct tpacket_hdr_v1.
const (
	bdStatus   = 8  // hdr.block_status
	bdNumPkts  = 12 // hdr.num_pkts
	bdFirstPkt = 16 // hdr.offset_to_first_pkt
	bdLastSec  = 40 // hdr.ts_last_pkt.ts_sec
	bdLastNsec = 44 // hdr.ts_last_pkt.ts_nsec
)

// tpacket3Hdr is struct tpacket3_hdr, read in place from the ring.
type tpacket3Hdr = unix.Tpacket3Hdr

// geometry is the shape of one TPACKET_V3 ring.
type geometry struct {
	BlockSize int // bytes, a power of two, a multiple of the page size
	Blocks    int
	FrameSize int // bytes per frame slot (only a sizing hint for V3)
	RetireMs  int // block retire timeout: a partly filled block is handed to us after this
	Snaplen   int
}

// ringGeometry derives a ring's shape from the snaplen, the batch size and
// the ring memory of one queue (bytes). Rules:
//   - frame slot = the V3 header, 16 bytes of MAC reserve and snaplen,
//     aligned to 16 (TPACKET_ALIGNMENT);
//   - block = the next power of two of max(frame slot, batch * 256 bytes),
//     between 128 KiB and 4 MiB: with a mix of small and large frames a block
//     holds about packet_batch_size packets, and one block always holds a
//     whole frame;
//   - blocks = ring memory / block, at least 4;
//   - retire timeout retireMs (0: 50 ms; the daemon's default is
//     performance.block_timeout_ms, 20 ms): an idle or slow link still delivers its packets
//     within 50 ms, and a busy one fills blocks long before. A partly
//     filled block is retired after the timeout, so at a low rate the ring
//     buffers blocks x 50 ms of traffic while a worker is held up (64 blocks:
//     3.2 s; with 8 ms it was half a second).
func ringGeometry(snaplen, batch, ringBytes, retireMs int) geometry {
	frame := align16(unix.SizeofTpacket3Hdr + 16 + snaplen)
	if batch <= 0 {
		batch = 1024
	}
	block := nextPow2(max(frame, batch*256))
	block = min(max(block, 128<<10), 4<<20)
	for block < frame {
		block <<= 1
	}
	n := max(ringBytes/block, 4)
	if retireMs <= 0 {
		retireMs = 50
	}
	return geometry{BlockSize: block, Blocks: n, FrameSize: frame, RetireMs: retireMs, Snaplen: snaplen}
}

func align16(n int) int { return (n + 15) &^ 15 }

func nextPow2(n int) int {
	p := 1
	for p < n {
		p <<= 1
	}
	return p
}

// ring is one AF_PACKET socket with its mmapped TPACKET_V3 RX ring. It is
// used by one worker goroutine only.
type ring struct {
	fd      int
	ifname  string
	ifindex int
	geo     geometry
	mem     []byte
	link    uint16 // decode link type of the interface
	cur     int    // next block to look at
	down    bool   // the interface went down (ENETDOWN seen)

	// Totals of this socket, for the identity kpackets = counted + kdrops
	// that holds once the socket receives nothing more and its last block
	// was walked (see Live.finish).
	counted  uint64 // frames walked
	kpackets uint64 // PACKET_STATISTICS tp_packets, accumulated
	kdrops   uint64 // PACKET_STATISTICS tp_drops, accumulated
}

// ringSetup is what every ring of a Live shares.
type ringSetup struct {
	geo     geometry
	filter  []unix.SockFilter
	promisc bool
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// ifIndex returns the index of interface name, in fd's network namespace.
func ifIndex(fd int, name string) (int, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, fmt.Errorf("look up interface %s: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("look up interface %s: %w", name, err)
	}
	return int(ifr.Uint32()), nil
}

// linkType maps the interface's ARPHRD type to the link type frames
// arrive with: Ethernet (and loopback, which Linux frames as Ethernet) or
// raw IP (tun, GRE and other devices without a link header).
func linkType(fd int, name string) (uint16, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, fmt.Errorf("look up interface %s: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFHWADDR, ifr); err != nil {
		return 0, fmt.Errorf("read link type of %s: %w", name, err)
	}
	// struct ifreq: the name (16 bytes), then struct sockaddr, family first.
	raw := (*[unix.IFNAMSIZ + 2]byte)(unsafe.Pointer(ifr))
	switch family := binary.NativeEndian.Uint16(raw[unix.IFNAMSIZ:]); family {
	case unix.ARPHRD_ETHER, unix.ARPHRD_LOOPBACK:
		return decode.LinkEthernet, nil
	case unix.ARPHRD_NONE, unix.ARPHRD_IPGRE, unix.ARPHRD_TUNNEL, unix.ARPHRD_TUNNEL6, unix.ARPHRD_SIT:
		return decode.LinkRaw, nil
	default:
		return 0, fmt.Errorf("capture on %s: link type %d (ARPHRD) is not supported", name, family)
	}
}

// openRing opens a socket on ifname, attaches the filter, maps the ring and
// binds it. The socket receives nothing until it is bound, so no frame
// escapes the filter.
func openRing(ifname string, s *ringSetup) (r *ring, err error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open packet socket: %w", err)
	}
	r = &ring{fd: fd, ifname: ifname, geo: s.geo}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	if r.ifindex, err = ifIndex(fd, ifname); err != nil {
		return nil, err
	}
	if r.link, err = linkType(fd, ifname); err != nil {
		return nil, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return nil, fmt.Errorf("set TPACKET_V3: %w", err)
	}
	if len(s.filter) > 0 {
		prog := unix.SockFprog{Len: uint16(len(s.filter)), Filter: &s.filter[0]}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
			return nil, fmt.Errorf("attach filter: %w", err)
		}
	}
	g := s.geo
	req := unix.TpacketReq3{
		Block_size:     uint32(g.BlockSize),
		Block_nr:       uint32(g.Blocks),
		Frame_size:     uint32(g.FrameSize),
		Frame_nr:       uint32(g.BlockSize / g.FrameSize * g.Blocks),
		Retire_blk_tov: uint32(g.RetireMs),
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, fmt.Errorf("set up rx ring (%d blocks of %d bytes): %w", g.Blocks, g.BlockSize, err)
	}
	r.mem, err = unix.Mmap(fd, 0, g.BlockSize*g.Blocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("map rx ring: %w", err)
	}
	sa := unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: r.ifindex}
	if err := unix.Bind(fd, &sa); err != nil {
		return nil, fmt.Errorf("bind to %s: %w", ifname, err)
	}
	if s.promisc {
		mr := unix.PacketMreq{Ifindex: int32(r.ifindex), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mr); err != nil {
			return nil, fmt.Errorf("set %s promiscuous: %w", ifname, err)
		}
	}
	return r, nil
}

// joinFanout adds the ring to fan-out group id (mode and flags in the upper
// bits as the kernel wants them). With id 0 and PACKET_FANOUT_FLAG_UNIQUEID
// the kernel picks a free id, which is returned.
func (r *ring) joinFanout(id uint16, mode int, unique bool) (uint16, error) {
	arg := int(id) | mode<<16
	if unique {
		arg |= unix.PACKET_FANOUT_FLAG_UNIQUEID << 16
	}
	if err := unix.SetsockoptInt(r.fd, unix.SOL_PACKET, unix.PACKET_FANOUT, arg); err != nil {
		return 0, fmt.Errorf("join fanout group: %w", err)
	}
	v, err := unix.GetsockoptInt(r.fd, unix.SOL_PACKET, unix.PACKET_FANOUT)
	if err != nil {
		return 0, fmt.Errorf("read fanout group: %w", err)
	}
	return uint16(v), nil
}

// setFanoutProgram hands the eBPF program to the ring's fan-out group.
func (r *ring) setFanoutProgram(f *bpf.Fanout) error {
	if err := unix.SetsockoptInt(r.fd, unix.SOL_PACKET, unix.PACKET_FANOUT_DATA, f.FD()); err != nil {
		return fmt.Errorf("set fanout program: %w", err)
	}
	return nil
}

// stats reads and resets the kernel's counters for this socket.
func (r *ring) stats() (packets, drops, freezes uint64, err error) {
	st, err := unix.GetsockoptTpacketStatsV3(r.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("read packet statistics: %w", err)
	}
	return uint64(st.Packets), uint64(st.Drops), uint64(st.Freeze_q_cnt), nil
}

// dropAllFilter is a classic BPF program that keeps no frame (ret #0).
var dropAllFilter = []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}

// dropAll replaces the socket's filter with one that keeps nothing: from
// then on the kernel hands the socket no new frame and counts none in
// PACKET_STATISTICS (af_packet.c: tpacket_rcv returns before counting when
// the filter says 0). A frame already past the old filter on another CPU
// may still land; settle waits for those.
func (r *ring) dropAll() error {
	prog := unix.SockFprog{Len: uint16(len(dropAllFilter)), Filter: &dropAllFilter[0]}
	if err := unix.SetsockoptSockFprog(r.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		return fmt.Errorf("attach drop-all filter to %s: %w", r.ifname, err)
	}
	return nil
}

// settle returns after every frame that was being received when it was
// called has been written to its ring and counted. The kernel receives
// frames inside RCU read-side sections; closing a packet socket waits for
// a grace period (packet_release calls synchronize_net), so opening and
// closing a spare socket, bound to nothing, is that wait.
func settle() error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open packet socket: %w", err)
	}
	if err := unix.Close(fd); err != nil {
		return fmt.Errorf("close packet socket: %w", err)
	}
	return nil
}

// balanced reports whether every frame the kernel counted for the socket
// was walked or counted dropped.
func (r *ring) balanced() bool { return r.kpackets == r.counted+r.kdrops }

// sockErr reads and clears the socket's pending error (ENETDOWN after the
// interface went down).
func (r *ring) sockErr() error {
	v, err := unix.GetsockoptInt(r.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return fmt.Errorf("read socket error: %w", err)
	}
	if v != 0 {
		return unix.Errno(v)
	}
	return nil
}

func (r *ring) close() error {
	var err error
	if r.mem != nil {
		err = unix.Munmap(r.mem)
		r.mem = nil
	}
	if r.fd >= 0 {
		err = errors.Join(err, unix.Close(r.fd))
		r.fd = -1
	}
	if err != nil {
		return fmt.Errorf("close ring: %w", err)
	}
	return nil
}

// block returns block i of the ring.
func (r *ring) block(i int) []byte {
	bs := r.geo.BlockSize
	return r.mem[i*bs : (i+1)*bs : (i+1)*bs]
}

func blockStatus(b []byte) *uint32 { return (*uint32)(unsafe.Pointer(&b[bdStatus])) }

// ready reports whether the kernel has handed block b to user space.
func ready(b []byte) bool {
	return atomic.LoadUint32(blockStatus(b))&unix.TP_STATUS_USER != 0
}

// backlog returns the share of r's blocks (0, 1/4, 1/2 or 3/4) that the
// kernel has filled and user space not walked yet, past the current one:
// blocks are filled in ring order, so block cur+k being ready means every
// block before it is.
func (r *ring) backlog() float64 {
	nb := r.geo.Blocks
	for _, f := range [...]int{3, 2, 1} {
		k := nb * f / 4
		if k > 0 && ready(r.block((r.cur+k-1)%nb)) {
			return float64(f) / 4
		}
	}
	return 0
}

// release hands block b back to the kernel.
func release(b []byte) { atomic.StoreUint32(blockStatus(b), unix.TP_STATUS_KERNEL) }

// walker walks ring blocks into a Worker. It belongs to one worker goroutine.
type walker struct {
	w       *Worker
	scratch []byte // frame with its VLAN tag restored, when too long for small
	// The batch being gathered for Worker.HandleBatch: frames in the block
	// (or, with their VLAN tag restored, in small), their wire lengths and
	// times.
	frames [BatchFrames][]byte
	wire   [BatchFrames]uint32
	ts     [BatchFrames]int64
	n      int
	small  []byte // BatchFrames slots of smallFrame bytes
}

// smallFrame is the size of a batch slot for a frame whose VLAN tag is put
// back; longer ones are handled alone.
const smallFrame = 2048

func newWalker(w *Worker, snaplen int) *walker {
	return &walker{w: w, scratch: make([]byte, snaplen+64), small: make([]byte, BatchFrames*smallFrame)}
}

// flush hands the gathered batch to the worker.
func (wk *walker) flush(link uint16) {
	if wk.n > 0 {
		wk.w.HandleBatch(wk.frames[:wk.n], wk.wire[:wk.n], wk.ts[:wk.n], link)
		wk.n = 0
	}
}

// walk hands every frame of block b to the worker, BatchFrames at a time,
// and returns how many frames and wire bytes it held and the time of its
// last frame. The frames are read in place; none is kept after walk
// returns. A frame whose VLAN tag the kernel moved to the frame header gets
// the tag back (copied into a batch slot, or the walker's scratch buffer
// when long, with the tag after the MAC addresses) and its wire length
// grows by 4, as tcpdump shows it.
func (wk *walker) walk(b []byte, link uint16) (n int, bytes uint64, last int64) {
	num := int(binary.NativeEndian.Uint32(b[bdNumPkts:]))
	off := int(binary.NativeEndian.Uint32(b[bdFirstPkt:]))
	for i := 0; i < num; i++ {
		if off <= 0 || off+unix.SizeofTpacket3Hdr > len(b) {
			break
		}
		h := (*tpacket3Hdr)(unsafe.Pointer(&b[off]))
		start := off + int(h.Mac)
		end := start + int(h.Snaplen)
		if end > len(b) || start > end {
			break
		}
		frame := b[start:end:end]
		wire := h.Len
		ts := int64(h.Sec)*1e9 + int64(h.Nsec)
		alone := false
		if h.Status&unix.TP_STATUS_VLAN_VALID != 0 && link == decode.LinkEthernet && len(frame) >= 12 && len(frame)+4 <= len(wk.scratch) {
			tpid := uint16(unix.ETH_P_8021Q)
			if h.Status&unix.TP_STATUS_VLAN_TPID_VALID != 0 && h.Hv1.Vlan_tpid != 0 {
				tpid = h.Hv1.Vlan_tpid
			}
			var s []byte
			if len(frame)+4 <= smallFrame {
				s = wk.small[wk.n*smallFrame : (wk.n+1)*smallFrame]
			} else {
				s, alone = wk.scratch, true
			}
			copy(s[:12], frame[:12])
			binary.BigEndian.PutUint16(s[12:], tpid)
			binary.BigEndian.PutUint16(s[14:], uint16(h.Hv1.Vlan_tci))
			m := copy(s[16:], frame[12:])
			frame = s[: 16+m : 16+m]
			wire += 4
		}
		if alone {
			wk.flush(link) // in order: the batch so far first
			wk.w.Handle(frame, wire, link, ts)
		} else {
			wk.frames[wk.n], wk.wire[wk.n], wk.ts[wk.n] = frame, wire, ts
			if wk.n++; wk.n == BatchFrames {
				wk.flush(link)
			}
		}
		n++
		bytes += uint64(wire)
		if ts > last {
			last = ts
		}
		if h.Next_offset == 0 {
			break
		}
		off += int(h.Next_offset)
	}
	wk.flush(link)
	return n, bytes, last
}
