//go:build unix

package engine

import (
	"os"

	"golang.org/x/sys/unix"
)

// mapFile maps the first size bytes of f privately: writes (the NFLOG byte
// swap) change the process's copy, never the file. The mapping must be
// released with unmapFile.
func mapFile(f *os.File, size int64) ([]byte, error) {
	b, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		return nil, err
	}
	_ = unix.Madvise(b, unix.MADV_SEQUENTIAL) // advice only: read ahead, drop behind
	return b, nil
}

func unmapFile(b []byte) error { return unix.Munmap(b) }

// pageSize is the unit of dropPages; the mapping starts on a page.
var pageSize = os.Getpagesize()

// dropPages releases the pages of b (whole pages of the mapping, already
// walked): they leave the resident set, the file's page cache keeps them.
func dropPages(b []byte) { _ = unix.Madvise(b, unix.MADV_DONTNEED) }
