//go:build !unix

package engine

import (
	"errors"
	"os"
)

// mapFile is not available here: files are read through the window's
// buffer.
func mapFile(f *os.File, size int64) ([]byte, error) { return nil, errors.ErrUnsupported }

func unmapFile(b []byte) error { return nil }

var pageSize = 4096

func dropPages(b []byte) {}
