package sensor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/netsentry/netsentry/engine"
	"github.com/netsentry/netsentry/flowtable"
	"github.com/netsentry/netsentry/httpd"
)

// StartCapture implements httpd.Sensor: a capture on ifaces (nil: the
// configured interfaces). The summary sinks start over (Exporter.Reset), so
// that each capture's summary describes that capture alone.
func (s *Sensor) StartCapture(ifaces []string) (httpd.CaptureStatus, error) {
	s.capMu.Lock()
	defer s.capMu.Unlock()
	if s.cur != nil {
		return s.statusLocked(), fmt.Errorf("capture already running on %v; stop it first: %w", s.cur.ifaces, httpd.ErrConflict)
	}
	cfg := s.opt.Config()
	if ifaces != nil {
		cfg.CaptureInterface = ifaces[0]
		cfg.NetworkAnalysis.CaptureInterfaces = ifaces
	}
	lc, fc, err := s.opt.Prepare(cfg)
	if err != nil {
		return s.statusLocked(), invalidError{err}
	}
	if len(lc.Interfaces) == 0 {
		return s.statusLocked(), fmt.Errorf("no capture interface configured: %w", httpd.ErrInvalid)
	}
	run := &captureRun{ifaces: lc.Interfaces, done: make(chan error, 1)}
	x := s.opt.Exporter
	// Ended flows go to the exporter without a copy: it keeps the shard's
	// batch and gives back an empty buffer (Exporter.Swap).
	swap := func(recs []flowtable.Record) []flowtable.Record {
		if run.stopping.Load() {
			return x.SwapWait(recs)
		}
		return x.Swap(recs)
	}
	lc.NewShard = func(q int) (*flowtable.Shard, error) {
		sh, err := flowtable.New(fc, nil)
		if err == nil {
			sh.SetEndSwap(swap)
		}
		return sh, err
	}
	lc.Logf = func(format string, args ...any) { s.log.Warn(fmt.Sprintf(format, args...)) }
	l, err := engine.NewLive(lc)
	if err != nil {
		return s.statusLocked(), invalidError{err}
	}
	if s.last != nil {
		x.Reset()
	}
	run.l = l
	run.since = time.Now()
	s.attachFeed(run) // the alert feed, when on (alerts.go)
	var runCtx context.Context
	runCtx, run.cancel = context.WithCancel(context.Background())
	go func() {
		err := l.Run(runCtx)
		if !run.stopping.Load() {
			why := errors.New("ended without a stop request") // the error is logged, not shown
			run.err.Store(&why)
			s.log.Error(fmt.Sprintf("capture on %v ended without a stop request", run.ifaces), "err", err)
			s.kickNow()
		}
		run.done <- err
	}()
	s.cur, s.last = run, run
	s.log.Info(fmt.Sprintf("capturing on %v: %s; fan-out %s", lc.Interfaces, l.Geometry(), l.FanoutMode()))
	s.kickNow()
	return s.statusLocked(), nil
}

// invalidError is an engine error caused by the request (an interface that
// does not exist): its message unchanged, and httpd.ErrInvalid for errors.Is.
type invalidError struct{ err error }

func (e invalidError) Error() string        { return e.err.Error() }
func (e invalidError) Unwrap() error        { return e.err }
func (e invalidError) Is(target error) bool { return target == httpd.ErrInvalid }

// StopCapture implements httpd.Sensor: the workers drain their rings and
// flush every open flow (reason shutdown) to the sinks, waiting for room in
// their queues; then the capture's sockets close.
func (s *Sensor) StopCapture() (httpd.CaptureStatus, error) {
	s.capMu.Lock()
	defer s.capMu.Unlock()
	if s.cur == nil {
		return s.statusLocked(), nil
	}
	err := s.stopLocked()
	s.kickNow()
	return s.statusLocked(), err
}

func (s *Sensor) stopLocked() error {
	run := s.cur
	s.cur = nil
	run.stopping.Store(true)
	run.cancel()
	err := <-run.done
	if p := run.err.Load(); p != nil {
		err = nil // logged when it happened; stopping it now is what the operator asked
		run.err.Store(nil)
	}
	tot := engine.TotalStats(run.l.Stats())
	s.log.Info(fmt.Sprintf("capture on %v stopped", run.ifaces), "packets", tot.Packets, "kernel_packets", tot.KernelPackets, "kernel_drops", tot.KernelDrops)
	if cerr := run.l.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("stop capture: %w", err)
	}
	return nil
}

// kickNow asks Run for a snapshot now (a capture started or stopped).
func (s *Sensor) kickNow() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Capture implements httpd.Sensor.
func (s *Sensor) Capture() httpd.CaptureStatus {
	s.capMu.Lock()
	defer s.capMu.Unlock()
	return s.statusLocked()
}

func (s *Sensor) statusLocked() httpd.CaptureStatus {
	if s.cur == nil {
		st := httpd.CaptureStatus{}
		if s.last != nil {
			st.Interfaces, st.Since = s.last.ifaces, s.last.since
		}
		return st
	}
	return s.statusOf(s.cur)
}

func (s *Sensor) statusOf(run *captureRun) httpd.CaptureStatus {
	return httpd.CaptureStatus{Running: true, Interfaces: run.ifaces, Since: run.since,
		Queues: len(run.l.Workers()), Fanout: run.l.FanoutMode()}
}

func (s *Sensor) running() *captureRun {
	s.capMu.Lock()
	defer s.capMu.Unlock()
	return s.cur
}

// Queues implements httpd.Sensor: each queue's counters now (atomic loads).
func (s *Sensor) Queues() []httpd.QueueStats {
	run := s.running()
	if run == nil {
		return nil
	}
	st := run.l.Stats()
	out := make([]httpd.QueueStats, len(st))
	for i, q := range st {
		out[i] = httpd.QueueStats{Queue: q.Queue, CPU: q.CPU, Packets: q.Packets, Bytes: q.Bytes,
			KernelPackets: q.KernelPackets, KernelDrops: q.KernelDrops, Freezes: q.Freezes}
	}
	return out
}

// Running reports whether a capture runs.
func (s *Sensor) Running() bool { return s.running() != nil }

// Close stops the capture, if one runs, flushing its flows.
func (s *Sensor) Close() error {
	s.capMu.Lock()
	defer s.capMu.Unlock()
	if s.cur == nil {
		return nil
	}
	return s.stopLocked()
}

// LastCapture returns the engine of the latest capture and whether it
// still runs; nil when none ran. After Close its workers have stopped, and
// their shards may be read directly (the final summary).
func (s *Sensor) LastCapture() (l *engine.Live, running bool) {
	s.capMu.Lock()
	defer s.capMu.Unlock()
	if s.last == nil {
		return nil, false
	}
	return s.last.l, s.cur != nil
}
