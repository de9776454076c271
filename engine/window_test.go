package engine

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/netsentry/netsentry/flowtable"
)

// chunkReader returns at most n bytes per Read, as a pipe or gzip does.
type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// tsharkFrames is tshark's view of every frame of path: captured length,
// wire length and time stamp (Unix ns).
func tsharkFrames(t *testing.T, path string) (capLen, wire []int, ts []int64) {
	t.Helper()
	out, err := exec.Command("tshark", "-n", "-r", path, "-T", "fields", "-E", "separator=,",
		"-e", "frame.cap_len", "-e", "frame.len", "-e", "frame.time_epoch").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		col := strings.Split(line, ",")
		c, _ := strconv.Atoi(col[0])
		w, _ := strconv.Atoi(col[1])
		sec, frac, _ := strings.Cut(col[2], ".")
		s, _ := strconv.ParseInt(sec, 10, 64)
		f, _ := strconv.ParseInt((frac + "000000000")[:9], 10, 64)
		capLen, wire, ts = append(capLen, c), append(wire, w), append(ts, s*1e9+f)
	}
	return
}

// TestWindowedRead: a classic pcap read in place, both mapped and through a
// small buffer refilled by short reads (a pipe, gzip), gives tshark's frames
// (lengths, times), and every frame of a batch keeps its bytes until the
// batch ends, when the window may move.
func TestWindowedRead(t *testing.T) {
	for _, name := range []string{"ndpi-1kxun.pcap", "tcpdump-tcp-handshake-nano.pcap", "arkime-bigendian.pcap", "zeek-nflog-http.pcap", "ndpi-dns_fragmented.pcap"} {
		path := filepath.Join(corpusDir, name)
		capLen, wire, ts := tsharkFrames(t, path)
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		mapped, err := OpenFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !mapped.Mapped {
			t.Errorf("%s: regular file not mapped", name)
		}
		// A window just large enough for the largest record: many refills.
		windowSize = maxRecord + 64
		buffered, err := newFile(name, &chunkReader{bytes.NewReader(raw), 7001}, int64(len(raw)))
		windowSize = 4 << 20
		if err != nil {
			t.Fatal(err)
		}
		w := buffered.win
		for _, rf := range []*File{mapped, buffered} {
			n, batches, cut := 0, 0, 0
			var kept [][]byte
			var copies [][]byte
			for done := false; !done; {
				kept, copies = kept[:0], copies[:0]
				for i := 0; i < 64; i++ {
					data, wl, stamp, _, err := rf.frame(i == 0)
					if errors.Is(err, errWindow) {
						cut++
						break
					}
					if err != nil {
						if err != io.EOF {
							t.Fatalf("%s mapped=%v: record %d: %v", name, rf.Mapped, n+1, err)
						}
						done = true
						break
					}
					if n >= len(wire) {
						t.Fatalf("%s: more frames than tshark's %d", name, len(wire))
					}
					// FCS-free files: the frame is the captured record.
					if len(rf.pcap.rec) != capLen[n] || int(wl) != wire[n] || stamp != ts[n] {
						t.Errorf("%s mapped=%v: frame %d: %d/%d bytes at %d, tshark %d/%d at %d", name, rf.Mapped, n+1,
							len(rf.pcap.rec), wl, stamp, capLen[n], wire[n], ts[n])
					}
					kept = append(kept, data)
					copies = append(copies, append([]byte(nil), data...))
					n++
				}
				for i := range kept {
					if !bytes.Equal(kept[i], copies[i]) {
						t.Fatalf("%s mapped=%v: a frame of batch %d changed before the batch ended", name, rf.Mapped, batches)
					}
				}
				batches++
			}
			if rf == buffered && len(raw) > 2*len(w.buf) && cut == 0 {
				t.Errorf("%s: no batch was cut at the window's end", name)
			}
			if n != len(wire) {
				t.Errorf("%s mapped=%v: %d frames, tshark %d", name, rf.Mapped, n, len(wire))
			}
			if rf.Offset() != int64(len(raw)) {
				t.Errorf("%s mapped=%v: offset %d at the end, file %d bytes", name, rf.Mapped, rf.Offset(), len(raw))
			}
		}
		mapped.Close()
	}
}

// TestMappedReadAllocs: walking the records of a mapped file costs no
// allocation.
func TestMappedReadAllocs(t *testing.T) {
	rf, err := OpenFile(filepath.Join(corpusDir, "ndpi-1kxun.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	if !rf.Mapped {
		t.Fatal("not mapped")
	}
	if n := testing.AllocsPerRun(1000, func() {
		if _, _, _, _, err := rf.frame(true); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per record", n)
	}
}

// TestReplayFileShrinks: a mapped capture truncated while it is replayed
// ends the replay like damage (every packet read before kept, the reason
// said), not with a crash.
func TestReplayFileShrinks(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(corpusDir, "ndpi-1kxun.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "shrinking.pcap")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	rf, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	if !rf.Mapped {
		t.Fatal("not mapped")
	}
	// Mapped at its full size, then cut to half a megabyte.
	if err := os.Truncate(path, 512<<10); err != nil {
		t.Fatal(err)
	}
	sh, err := flowtable.New(flowtable.Config{}, func([]flowtable.Record) {})
	if err != nil {
		t.Fatal(err)
	}
	st, err := Replay(context.Background(), rf, NewWorker(sh), ReplayOptions{})
	if err != nil {
		t.Fatalf("replay of the shrunk file: %v", err)
	}
	if st.Stop == nil || !strings.Contains(st.Stop.Error(), "shrank") {
		t.Errorf("stop %v, want the file's shrinking", st.Stop)
	}
	if st.Packets == 0 || st.Offset > 512<<10 {
		t.Errorf("%d packets, %d bytes read of the half megabyte left", st.Packets, st.Offset)
	}
}
