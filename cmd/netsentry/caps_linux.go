package main

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// raiseCaps makes the capabilities the process holds in its permitted set
// effective, in every thread. The container image gives the binary file
// capabilities (cap_net_raw,cap_bpf=p) without the effective bit, so that
// a runtime that does not grant them (docker run without --cap-add) still
// runs it, minus capture, instead of refusing the exec; the sensor then
// raises what it was given here, at start, before it opens any socket.
// Under systemd the unit's AmbientCapabilities are effective already, and
// nothing changes. It needs a binary built with CGO_ENABLED=0 (the image's:
// the Go runtime can then change every thread at once); otherwise it
// reports false and leaves things as they are.
func raiseCaps() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	if data[0].Effective == data[0].Permitted && data[1].Effective == data[1].Permitted {
		return true
	}
	data[0].Effective, data[1].Effective = data[0].Permitted, data[1].Permitted
	_, _, errno := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	return errno == 0
}
