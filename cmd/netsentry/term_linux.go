package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// fileIsTerminal reports whether f is a terminal: it answers the terminal
// attributes request. A character device is not enough: /dev/null is one,
// and a daemon started with stdout on /dev/null drew the terminal summary
// into it every two seconds, copying every host each time.
func fileIsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
