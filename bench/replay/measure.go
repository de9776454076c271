package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sample is one measured run of a tool.
type sample struct {
	wall   time.Duration
	cpu    time.Duration // user + system
	user   time.Duration
	sys    time.Duration
	maxRSS int64 // bytes; 0 when not measured
}

// rssPoll is how often runChild reads a child's peak RSS.
const rssPoll = 2 * time.Millisecond

// runChild runs argv with stdout sent to /dev/null and returns its wall
// time, its CPU time (user + system, from its rusage) and its peak RSS.
//
// The peak RSS is the child's VmHWM, read from /proc every rssPoll while it
// runs (it only grows, so the last reading misses at most the growth of the
// final interval). The rusage's ru_maxrss is not used when a reading exists:
// Go starts children with vfork, and exec then folds the parent's own peak
// RSS into the child's ru_maxrss, so it is never below this process's.
func runChild(ctx context.Context, argv []string) (sample, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr tailBuffer
	cmd.Stderr = &stderr // stdout stays nil: /dev/null
	start := time.Now()
	err := cmd.Start()
	var hwm int64
	if err == nil {
		done := make(chan struct{})
		go func() {
			defer close(done)
			err = cmd.Wait()
		}()
		status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		tick := time.NewTicker(rssPoll)
	poll:
		for {
			if v := readHWM(status); v > hwm {
				hwm = v
			}
			select {
			case <-done:
				break poll
			case <-tick.C:
			}
		}
		tick.Stop()
	}
	wall := time.Since(start)
	if err != nil {
		if ctx.Err() != nil {
			return sample{}, ctx.Err()
		}
		return sample{}, fmt.Errorf("run %s: %w%s", strings.Join(argv, " "), err, stderr.suffix())
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return sample{}, errors.New("run " + argv[0] + ": no rusage for the child on this system")
	}
	s := sample{
		wall:   wall,
		user:   time.Duration(ru.Utime.Nano()),
		sys:    time.Duration(ru.Stime.Nano()),
		maxRSS: hwm,
	}
	s.cpu = s.user + s.sys
	if s.maxRSS == 0 {
		s.maxRSS = ru.Maxrss * 1024 // an upper bound (see above); Linux reports KiB
	}
	return s, nil
}

// readHWM returns the VmHWM (peak resident set) in a /proc/PID/status file,
// in bytes; 0 when the process is gone or a zombie.
func readHWM(status string) int64 {
	b, err := os.ReadFile(status)
	if err != nil {
		return 0
	}
	return parseHWM(b)
}

// parseHWM finds "VmHWM:  1234 kB" in the text of a /proc/PID/status file.
func parseHWM(b []byte) int64 {
	i := bytes.Index(b, []byte("\nVmHWM:"))
	if i < 0 {
		return 0
	}
	line := b[i+len("\nVmHWM:"):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	f := strings.Fields(string(line))
	if len(f) != 2 || f[1] != "kB" {
		return 0
	}
	kb, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0
	}
	return kb * 1024
}

// selfCPU returns this process's CPU time so far (user + system, all threads).
func selfCPU() (user, sys time.Duration, err error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano()), nil
}

// cpuMark is a point in this process's CPU and wall time.
type cpuMark struct {
	user, sys time.Duration
	wall      time.Time
}

// markCPU reads the CPU this process used so far.
func markCPU() (cpuMark, error) {
	u, s, err := selfCPU()
	return cpuMark{u, s, time.Now()}, err
}

// since returns the wall and CPU time this process spent since m.
func (m cpuMark) since() (sample, error) {
	n, err := markCPU()
	if err != nil {
		return sample{}, err
	}
	s := sample{wall: n.wall.Sub(m.wall), user: n.user - m.user, sys: n.sys - m.sys}
	s.cpu = s.user + s.sys
	return s, nil
}

// tailBuffer keeps the last 4 KiB written to it (a child's stderr).
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if over := len(t.b) - 4096; over > 0 {
		t.b = t.b[over:]
	}
	return len(p), nil
}

// suffix formats the kept output for an error message.
func (t *tailBuffer) suffix() string {
	s := string(bytes.TrimSpace(t.b))
	if s == "" {
		return ""
	}
	return ":\n" + s
}

// summary is the median and the range of a set of measurements.
type summary struct {
	med, min, max float64
	n             int
}

func summarize(xs []float64) summary {
	if len(xs) == 0 {
		return summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return summary{med: m, min: s[0], max: s[len(s)-1], n: len(s)}
}
