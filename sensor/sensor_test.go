package sensor

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netsentry/netsentry/configs"
	"github.com/netsentry/netsentry/engine"
	"github.com/netsentry/netsentry/flowtable"
	"github.com/netsentry/netsentry/httpd"
)

func newTestSensor(t *testing.T, prepare func(configs.Config) (engine.LiveConfig, flowtable.Config, error)) (*Sensor, *engine.Exporter) {
	t.Helper()
	x := engine.NewExporter(4, false, engine.NewTopFlows(3))
	t.Cleanup(func() { x.Close() })
	if prepare == nil {
		prepare = func(configs.Config) (engine.LiveConfig, flowtable.Config, error) {
			return engine.LiveConfig{}, flowtable.Config{}, nil
		}
	}
	s, err := New(Options{Config: configs.Default, Prepare: prepare, Exporter: x, Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, x
}

func TestNewNeedsOptions(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without Config, Prepare and Exporter succeeded")
	}
}

// TestPublishes: snapshots are published every interval with increasing
// sequence numbers, every subscriber gets them, and a subscriber that does
// not read misses snapshots without delaying the others.
func TestPublishes(t *testing.T) {
	s, _ := newTestSensor(t, nil)
	fast, _, cancelFast := s.Subscribe(16)
	defer cancelFast()
	_, missed, cancelSlow := s.Subscribe(1)
	defer cancelSlow()
	var last uint64
	for range 5 {
		select {
		case snap := <-fast:
			if snap.Seq <= last {
				t.Fatalf("seq %d after %d", snap.Seq, last)
			}
			last = snap.Seq
			if snap.Capture.Running {
				t.Fatal("a capture runs in a sensor that never started one")
			}
		case <-time.After(2 * time.Second):
			t.Fatal("no snapshot within 2 s at a 20 ms interval")
		}
	}
	if missed() == 0 {
		t.Error("a subscriber with room for one snapshot that never read missed none")
	}
	if s.Published() < last {
		t.Errorf("Published() = %d, behind the %d received", s.Published(), last)
	}
}

// TestWait: a consumer asking for parts gets a snapshot no older than it
// asked; a cancelled wait says so.
func TestWait(t *testing.T) {
	s, _ := newTestSensor(t, nil)
	before := time.Now()
	snap, err := s.Wait(context.Background(), PartFlows|PartHosts, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !snap.Parts.Has(PartFlows | PartHosts) {
		t.Errorf("parts %b lack flows and hosts", snap.Parts)
	}
	if age := before.Sub(snap.At); age > 50*time.Millisecond {
		t.Errorf("snapshot %v older than asked", age)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Wait(ctx, PartFlows, -time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: %v", err)
	}
	api, err := s.Snapshot(context.Background(), httpd.Parts{Flows: true})
	if err != nil || api.Seq == 0 {
		t.Errorf("API snapshot seq %d, %v", api.Seq, err)
	}
}

// TestHealthWithoutCapture: a sensor whose capture is stopped on purpose
// is healthy and says so.
func TestHealthWithoutCapture(t *testing.T) {
	s, _ := newTestSensor(t, nil)
	if ok, reason := s.Health(); !ok || reason != "capture stopped" {
		t.Errorf("Health() = %v %q", ok, reason)
	}
}

// TestStartCaptureErrors: a capture that cannot be prepared or has no
// interface is the request's fault (httpd.ErrInvalid), and nothing runs.
func TestStartCaptureErrors(t *testing.T) {
	bad := errors.New("network_analysis.bpf_filter: syntax error")
	s, _ := newTestSensor(t, func(configs.Config) (engine.LiveConfig, flowtable.Config, error) {
		return engine.LiveConfig{}, flowtable.Config{}, bad
	})
	if _, err := s.StartCapture([]string{"eth0"}); !errors.Is(err, httpd.ErrInvalid) || !errors.Is(err, bad) {
		t.Errorf("prepare error: %v", err)
	}
	s2, _ := newTestSensor(t, nil)
	if _, err := s2.StartCapture(nil); !errors.Is(err, httpd.ErrInvalid) {
		t.Errorf("no interface: %v", err)
	}
	if s.Running() || s2.Running() {
		t.Error("a capture runs after failed starts")
	}
	if st, err := s2.StopCapture(); err != nil || st.Running {
		t.Errorf("stopping a stopped capture: %+v %v", st, err)
	}
	if l, _ := s2.LastCapture(); l != nil {
		t.Error("a last capture exists though none started")
	}
}

// TestTopHosts: the n hosts with the most bytes, largest first, equal to a
// full sort of the same hosts.
func TestTopHosts(t *testing.T) {
	var hs []flowtable.HostCounters
	for i := range 500 {
		h := flowtable.HostCounters{IPVersion: 4, BytesTx: uint64((i * 7919) % 1000), BytesRx: uint64(i % 13)}
		h.Addr[0], h.Addr[1] = byte(i>>8), byte(i)
		hs = append(hs, h)
	}
	got := topHosts(hs, 10)
	all := slices.Clone(hs)
	slices.SortStableFunc(all, func(a, b flowtable.HostCounters) int { return cmp.Compare(b.Bytes(), a.Bytes()) })
	if len(got) != 10 {
		t.Fatalf("%d hosts, want 10", len(got))
	}
	for i := range got {
		if got[i].Bytes() != all[i].Bytes() {
			t.Errorf("host %d: %d bytes, a full sort says %d", i, got[i].Bytes(), all[i].Bytes())
		}
	}
	if n := len(topHosts(hs[:3], 10)); n != 3 {
		t.Errorf("top 10 of 3 hosts: %d", n)
	}
}

// TestHealthCaptureEnded: a capture whose Run returned without a stop
// request makes the sensor unhealthy, with the reason; once stopped on
// request it is healthy again.
func TestHealthCaptureEnded(t *testing.T) {
	s, _ := newTestSensor(t, nil)
	run := &captureRun{ifaces: []string{"c0"}}
	why := errors.New("ended without a stop request")
	run.err.Store(&why)
	s.capMu.Lock()
	s.cur, s.last = run, run
	s.capMu.Unlock()
	if ok, reason := s.Health(); ok || reason != "capture on [c0] ended without a stop request" {
		t.Errorf("capture ended by itself: %v %q", ok, reason)
	}
	s.capMu.Lock()
	s.cur = nil
	s.capMu.Unlock()
	if ok, _ := s.Health(); ok {
		t.Error("healthy while the last capture ended by itself and nobody stopped it")
	}
	run.err.Store(nil) // what stopLocked does on a stop request
	if ok, reason := s.Health(); !ok || reason != "capture stopped" {
		t.Errorf("after the stop: %v %q", ok, reason)
	}
}

// TestWorkerThatDoesNotAnswer: a worker whose loop does not turn fails the
// snapshot request within the context's deadline, naming its queue.
func TestWorkerThatDoesNotAnswer(t *testing.T) {
	shard, err := flowtable.New(flowtable.DefaultConfig(), func([]flowtable.Record) {})
	if err != nil {
		t.Fatal(err)
	}
	idle := engine.NewWorker(shard) // never run: it answers no request
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = workerSnapshots(ctx, []*engine.Worker{idle}, engine.SnapshotParts{})
	if err == nil || !strings.Contains(err.Error(), "queue 0") {
		t.Errorf("idle worker: %v", err)
	}
	if d := time.Since(start); d < 90*time.Millisecond || d > 2*time.Second {
		t.Errorf("took %v, want about the 100 ms deadline", d)
	}
}

// TestWaitAfterRun: once Run has stopped (shutdown), a consumer still asking
// for a snapshot gets the latest at once instead of waiting for a publish
// that will not come.
func TestWaitAfterRun(t *testing.T) {
	x := engine.NewExporter(4, false, engine.NewTopFlows(3))
	defer x.Close()
	s, err := New(Options{Config: configs.Default, Exporter: x, Interval: time.Hour,
		Prepare: func(configs.Config) (engine.LiveConfig, flowtable.Config, error) {
			return engine.LiveConfig{}, flowtable.Config{}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	cancel()
	<-done
	start := time.Now()
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	if _, err := s.Wait(wctx, PartFlows, time.Nanosecond); err != nil {
		t.Fatalf("Wait after Run: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Wait after Run took %v", d)
	}
}
