package engine

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/netsentry/netsentry/flowtable"
)

// ErrNoPackets is returned (wrapped) when a file could not be read at all.
var ErrNoPackets = errors.New("no packet could be read")

// errShrunk: the mapped file lost pages while it was read (truncated).
var errShrunk = errors.New("the file shrank while it was read")

// File is a pcap or pcapng capture, possibly gzip-compressed, opened for
// replay. The format is sniffed from the magic number, never from the file
// name. An uncompressed regular file is mapped into memory and its records
// are walked in place; a compressed file or a pipe is read in large reads
// into one reused buffer (see window).
type File struct {
	path   string
	f      *os.File
	mem    []byte          // the mapping, nil when read through a buffer
	cr     *countingReader // the raw input when read through a buffer
	win    *window         // pcap: the bytes the records are walked in
	pcap   *pcapReader
	ng     *pcapgo.NgReader
	ngIn   *countingReader // pcapng over a mapping: bytes the reader took
	link   uint16
	links  []uint16 // pcapng: link type per interface
	size   int64
	Format string // "pcap" or "pcapng"
	// Variant names the pcap record layout read, as wiretap (capinfos -t)
	// names it: "pcap", "nsecpcap", "modpcap", "suse6_3pcap", "rh6_1pcap",
	// "aixpcap", "nokiapcap"; empty for pcapng.
	Variant string
	// Compressed is set for a gzip-compressed file (read as it is inflated).
	Compressed bool
	// Mapped is set when the file is read through a memory mapping.
	Mapped bool
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// OpenFile opens a capture file for replay.
func OpenFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open capture: %w", err)
	}
	var size int64
	regular := false
	if st, err := f.Stat(); err == nil {
		size, regular = st.Size(), st.Mode().IsRegular()
	}
	var rf *File
	if regular && size >= 4 && size == int64(int(size)) {
		var m [2]byte
		if _, err := f.ReadAt(m[:], 0); err == nil && (m[0] != 0x1f || m[1] != 0x8b) {
			if mem, err := mapFile(f, size); err == nil {
				rf, err = newMappedFile(path, mem)
				if err != nil {
					unmapFile(mem)
					f.Close()
					return nil, err
				}
			}
		}
	}
	if rf == nil {
		rf, err = newFile(path, f, size)
		if err != nil {
			f.Close()
			return nil, err
		}
	}
	rf.f = f
	return rf, nil
}

// newMappedFile reads a capture's header from mem, the whole file mapped.
func newMappedFile(path string, mem []byte) (*File, error) {
	rf := &File{path: path, size: int64(len(mem)), mem: mem, Mapped: true}
	w := mappedWindow(mem)
	return rf, rf.sniff(w, func() io.Reader {
		rf.ngIn = &countingReader{r: bytes.NewReader(mem)}
		rf.win = w // for dropBehind only: gopacket's reader copies what it took
		return rf.ngIn
	})
}

// newFile reads a capture's header from r and sniffs its format.
func newFile(path string, r io.Reader, size int64) (*File, error) {
	rf := &File{path: path, size: size, cr: &countingReader{r: r}}
	br := bufio.NewReaderSize(rf.cr, 64<<10)
	var src io.Reader = br
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		// gzip-compressed, as tshark reads it.
		zr, zerr := gzip.NewReader(br)
		if zerr != nil {
			return nil, fmt.Errorf("open capture %s: read gzip header: %w", path, zerr)
		}
		rf.Compressed = true
		src = zr
	}
	w := readWindow(src)
	return rf, rf.sniff(w, func() io.Reader { return io.MultiReader(bytes.NewReader(w.peek()), src) })
}

// sniff reads the format from the first bytes of w and the file header:
// a pcap is walked in w; a pcapng is read by gopacket's reader from ng(),
// the same bytes from the start.
func (rf *File) sniff(w *window, ng func() io.Reader) error {
	var err error
	if !w.fill(4) {
		err = w.short()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("open capture %s: file is empty or shorter than a capture header: %w", rf.path, ErrNoPackets)
		}
		return fmt.Errorf("open capture %s: %w", rf.path, err)
	}
	magic := w.peek()[:4]
	switch m := binary.LittleEndian.Uint32(magic); {
	case m == 0x0a0d0d0a:
		rf.Format = "pcapng"
		rf.ng, err = pcapgo.NewNgReader(ng(), pcapgo.NgReaderOptions{WantMixedLinkType: true})
	case isPcapMagic(m):
		rf.Format = "pcap"
		rf.win = w
		rf.pcap, err = newPcapReader(w)
		if err == nil {
			rf.link = rf.pcap.link
			rf.Variant = rf.pcap.variant.String()
		}
	default:
		err = fmt.Errorf("not a pcap or pcapng file (magic %x); convert it with editcap or capture with tcpdump -w", magic)
	}
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("%w: file ends inside its header", err)
		}
		return fmt.Errorf("open capture %s: %w", rf.path, err)
	}
	return nil
}

// Close closes the file and releases its mapping; no frame it handed out
// may be used after.
func (rf *File) Close() error {
	var err error
	if rf.mem != nil {
		err = unmapFile(rf.mem)
		rf.mem = nil
	}
	if rf.f != nil {
		if cerr := rf.f.Close(); err == nil {
			err = cerr
		}
		rf.f = nil
	}
	return err
}

// Size is the file's size in bytes; Offset how far it has been read (of a
// compressed file: compressed bytes).
func (rf *File) Size() int64 { return rf.size }
func (rf *File) Offset() int64 {
	switch {
	case rf.cr != nil:
		return rf.cr.n
	case rf.ngIn != nil:
		return rf.ngIn.n
	case rf.pcap != nil:
		return rf.win.offset()
	}
	return 0
}

// next returns the next record as gopacket describes it (tests). data is
// valid until the following call.
func (rf *File) next() (data []byte, ci gopacket.CaptureInfo, link uint16, err error) {
	var wirelen uint32
	var ts int64
	data, wirelen, ts, link, err = rf.frame(true)
	if err != nil {
		return nil, ci, 0, err
	}
	ci = gopacket.CaptureInfo{Timestamp: time.Unix(0, ts), CaptureLength: len(data), Length: int(wirelen)}
	return data, ci, link, nil
}

// frame returns the next record in place: its captured bytes, wire length,
// time (Unix ns, 0 when the record has none) and link type. For a pcap,
// move false keeps every frame handed out since the last call with move
// true valid, and gives errWindow when the next record would need the
// window refilled (never for a mapped file); a pcapng frame is valid until
// the following call.
func (rf *File) frame(move bool) (data []byte, wirelen uint32, ts int64, link uint16, err error) {
	if rf.pcap != nil {
		data, wirelen, ts, err = rf.pcap.next(move)
		return data, wirelen, ts, rf.link, err
	}
	if rf.ngIn != nil && rf.ngIn.n-int64(rf.win.dropped) >= dropStep {
		rf.win.off = int(rf.ngIn.n)
		rf.win.dropBehind()
	}
	data, ci, err := rf.ng.ZeroCopyReadPacketData()
	if err != nil {
		return nil, 0, 0, 0, err
	}
	i := ci.InterfaceIndex
	if i >= len(rf.links) || rf.ng.NInterfaces() != len(rf.links) {
		rf.links = rf.links[:0]
		for j := 0; j < rf.ng.NInterfaces(); j++ {
			iface, _ := rf.ng.Interface(j)
			rf.links = append(rf.links, uint16(iface.LinkType))
		}
	}
	if i < len(rf.links) {
		link = rf.links[i]
	}
	if !ci.Timestamp.IsZero() {
		ts = ci.Timestamp.UnixNano()
	}
	return data, uint32(ci.Length), ts, link, nil
}

// ReplayOptions control Replay.
type ReplayOptions struct {
	// RealTime paces packets at their recorded gaps (--replay-speed 1x);
	// otherwise the file is read as fast as possible.
	RealTime bool
	// BatchSize is how many packets pass between batch ends (expiry).
	BatchSize int
	// Progress, if not nil, is called about once a second with the state so far.
	Progress func(ReplayStats)
}

// ReplayStats describe a replay.
type ReplayStats struct {
	Packets  uint64
	Bytes    uint64 // wire bytes
	Offset   int64  // bytes of the file read
	Size     int64  // file size
	Stop     error  // why reading stopped early (truncated or corrupt), nil at a clean end
	Duration time.Duration
}

// Replay feeds every record of rf to w in file order, using packet
// timestamps as the clock, and flushes every open flow at the end with reason
// end-of-capture. A damaged file keeps every good packet: reading stops at the
// damage and the reason is in ReplayStats.Stop. The returned error is non-nil
// only when nothing could be read or ctx was cancelled.
func Replay(ctx context.Context, rf *File, w *Worker, opt ReplayOptions) (ReplayStats, error) {
	batch := opt.BatchSize
	if batch <= 0 {
		batch = 1024
	}
	var st ReplayStats
	st.Size = rf.size
	start := time.Now()
	lastProgress := start
	var firstTS, now int64
	var err error
	var cancelled error
	func() {
		if rf.mem != nil {
			// A mapped file that shrinks under the reader faults on the
			// pages it lost: the reader touches a record's last byte before
			// handing it out, so the fault comes before the packet is
			// accounted, and ends the replay like damage.
			defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
			defer func() {
				if p := recover(); p != nil {
					if _, ok := p.(interface{ Addr() uintptr }); !ok {
						panic(p)
					}
					err = errShrunk
				}
			}()
		}
		// A pcap's frames go to the worker BatchFrames at a time, as a ring
		// block's do (HandleBatch's passes overlap their flows' cache
		// misses); a group holds frames of one link type only. A pcapng's
		// go one at a time (each is valid until the next read).
		var (
			frames  [BatchFrames][]byte
			wires   [BatchFrames]uint32
			stamps  [BatchFrames]int64
			pending int
			plink   uint16
		)
		flush := func() {
			if pending == 0 {
				return
			}
			w.HandleBatch(frames[:pending], wires[:pending], stamps[:pending], plink)
			st.Packets += uint64(pending)
			for _, n := range wires[:pending] {
				st.Bytes += uint64(n)
			}
			pending = 0
		}
		for {
			// A batch, like a ring block: records walked in place, none
			// copied; the window moves (a buffered file's refill) only at
			// the start of a batch, so every frame of a batch stays valid
			// until its EndBatch.
			for i := 0; i < batch; i++ {
				data, wirelen, ts, link, rerr := rf.frame(i == 0)
				if rerr != nil {
					if rerr != errWindow {
						err = rerr
					}
					break
				}
				if opt.RealTime {
					if st.Packets == 0 && pending == 0 {
						firstTS = ts
					} else if wait := time.Duration(ts-firstTS) - time.Since(start); wait > time.Millisecond {
						flush()
						w.EndBatch(now)
						select {
						case <-ctx.Done():
							cancelled = ctx.Err()
							return
						case <-time.After(wait):
						}
					}
				}
				if ts > now {
					now = ts
				}
				if rf.pcap == nil {
					// A pcapng frame is valid until the next read only.
					w.Handle(data, wirelen, link, ts)
					st.Packets++
					st.Bytes += uint64(wirelen)
					continue
				}
				if pending == BatchFrames || (pending > 0 && link != plink) {
					flush()
				}
				frames[pending], wires[pending], stamps[pending], plink = data, wirelen, ts, link
				pending++
			}
			flush()
			w.EndBatch(now)
			if err != nil {
				break
			}
			if ctx.Err() != nil {
				cancelled = ctx.Err()
				return
			}
			if opt.Progress != nil {
				if t := time.Now(); t.Sub(lastProgress) >= time.Second {
					lastProgress = t
					st.Offset, st.Duration = rf.Offset(), t.Sub(start)
					opt.Progress(st)
				}
			}
		}
	}()
	if cancelled != nil {
		return st, cancelled
	}
	st.Offset, st.Duration = rf.Offset(), time.Since(start)
	if !errors.Is(err, io.EOF) {
		st.Stop = describeStop(err, st.Packets)
	}
	w.Shard().Flush(flowtable.EndEndOfCapture)
	if st.Packets == 0 && st.Stop != nil {
		return st, fmt.Errorf("replay %s: %w: %w", rf.path, ErrNoPackets, st.Stop)
	}
	return st, nil
}

func describeStop(err error, n uint64) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("file is cut short in the middle of a packet record after %d good packets (kept)", n)
	}
	return fmt.Errorf("file is damaged after %d good packets (kept): %w", n, err)
}
