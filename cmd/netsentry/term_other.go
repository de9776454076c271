//go:build !linux

package main

import "os"

// fileIsTerminal reports whether f is a character device (where there is
// no terminal attributes request to ask).
func fileIsTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
