package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// sdNotify sends state (e.g. "READY=1") to the service manager over
// $NOTIFY_SOCKET, as sd_notify(3) does. Without NOTIFY_SOCKET (not started
// by systemd with Type=notify) it does nothing and reports false.
func sdNotify(state string) (bool, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return false, nil
	}
	if path[0] == '@' { // abstract socket
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("sd_notify: %w", err)
	}
	return true, nil
}

// watchdogInterval returns how often to ping the watchdog (half of
// WATCHDOG_USEC), or 0 when the watchdog is off or meant for another process.
func watchdogInterval() time.Duration {
	us, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || us <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(us) * time.Microsecond / 2
}
