package engine

import "io"

// windowSize is the reused buffer of a capture read through read(2) (gzip,
// pipes): large reads, and room for the variant guess's first records and
// the largest record. A variable for the tests only.
var windowSize = 4 << 20

// window is the bytes of a capture file that a reader walks in place: the
// whole file mapped into memory (done from the start), or one reused buffer
// that large reads refill. Records are handed out as slices of buf, never
// copied; a refill moves the unread tail to the front, so what was handed
// out stays valid only until the next fill (see pcapReader.next).
type window struct {
	r        io.Reader // nil for a mapped file
	buf      []byte
	off, end int   // unread bytes: buf[off:end]
	base     int64 // input offset of buf[0]
	done     bool  // nothing more will come: mapped, or r has ended
	err      error // why r ended (io.EOF at a clean end)
	mapped   bool
	dropped  int // mapped: buf[:dropped] has been handed back (dropBehind)
}

// dropStep is how far a mapped window's reader moves before the pages it
// has walked are handed back to the kernel: the process's resident set
// holds at most about this much of the file.
const dropStep = 16 << 20

// mappedWindow is a window over b, the whole file.
func mappedWindow(b []byte) *window {
	return &window{buf: b, end: len(b), done: true, err: io.EOF, mapped: true}
}

// dropBehind hands the mapped pages before the reader back to the kernel
// (they stay in the page cache), once the reader is dropStep past the last
// drop. Call it only where no frame before the reader is still in use: at
// the start of a batch.
func (w *window) dropBehind() {
	if !w.mapped || w.off-w.dropped < dropStep {
		return
	}
	to := w.off &^ (pageSize - 1)
	if to > w.dropped {
		dropPages(w.buf[w.dropped:to])
		w.dropped = to
	}
}

// readWindow is a window refilled from r.
func readWindow(r io.Reader) *window {
	return &window{r: r, buf: make([]byte, windowSize)}
}

// fill makes at least n unread bytes available, reading more if it must,
// and reports whether it could (n may not exceed the buffer).
func (w *window) fill(n int) bool {
	if w.end-w.off >= n {
		return true
	}
	if w.done {
		return false
	}
	if w.off > 0 {
		w.base += int64(w.off)
		w.end = copy(w.buf, w.buf[w.off:w.end])
		w.off = 0
	}
	n = min(n, len(w.buf))
	for w.end < n {
		m, err := w.r.Read(w.buf[w.end:])
		w.end += m
		if err != nil {
			w.done, w.err = true, err
			break
		}
		if m == 0 {
			w.done, w.err = true, io.ErrNoProgress
			break
		}
	}
	return w.end-w.off >= n
}

// short is the error for a fill that came up short: the reader's error, or
// io.EOF when nothing was left, io.ErrUnexpectedEOF when part of it was.
func (w *window) short() error {
	if w.err != nil && w.err != io.EOF {
		return w.err
	}
	if w.end == w.off {
		return io.EOF
	}
	return io.ErrUnexpectedEOF
}

// peek returns the unread bytes.
func (w *window) peek() []byte { return w.buf[w.off:w.end] }

// take consumes n unread bytes (fill first) and returns them in place.
func (w *window) take(n int) []byte {
	b := w.buf[w.off : w.off+n : w.off+n]
	w.off += n
	return b
}

// offset is how far into the input the reader is.
func (w *window) offset() int64 { return w.base + int64(w.off) }
