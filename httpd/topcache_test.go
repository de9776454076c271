package httpd

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netsentry/netsentry/flowtable"
)

// slowTops is a Sensor whose TopFlows takes hold (or until its context
// ends) and counts its calls and the calls whose context ended first.
type slowTops struct {
	Sensor
	hold      time.Duration
	calls     atomic.Int32
	cancelled atomic.Int32
}

func (s *slowTops) TopFlows(ctx context.Context, q flowtable.FlowQuery) ([]flowtable.Record, error) {
	s.calls.Add(1)
	select {
	case <-time.After(s.hold):
		return []flowtable.Record{{PacketsTx: uint64(q.Limit)}}, nil
	case <-ctx.Done():
		s.cancelled.Add(1)
		return nil, ctx.Err()
	}
}

// TestTopCacheShares: concurrent requests for one query share one
// selection and one rendered body; a stale answer is served while one
// refresh runs; other queries get their own selection.
func TestTopCacheShares(t *testing.T) {
	src := &slowTops{hold: 10 * time.Millisecond} // fresh for max(200 ms, 10×10 ms)
	c := newTopCache(src, 200*time.Millisecond)
	q := flowtable.FlowQuery{Limit: 100}
	var wg sync.WaitGroup
	res := make([]*topResult, 16)
	for i := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.get(context.Background(), q)
			if err != nil {
				t.Error(err)
			}
			res[i] = r
		}()
	}
	wg.Wait()
	if n := src.calls.Load(); n != 1 {
		t.Fatalf("16 concurrent requests made %d selections, want 1", n)
	}
	renders := 0
	for _, r := range res {
		if r != res[0] {
			t.Fatal("concurrent requests got different answers")
		}
		r.render(func(*topResult) []byte { renders++; return []byte("x") })
	}
	if renders != 1 {
		t.Errorf("rendered %d times, want once", renders)
	}
	time.Sleep(250 * time.Millisecond) // past ttl, within maxStale
	start := time.Now()
	for range 20 {
		if r, err := c.get(context.Background(), q); err != nil || r != res[0] {
			t.Fatalf("stale get: %v, same answer %v", err, r == res[0])
		}
	}
	if d := time.Since(start); d > 40*time.Millisecond {
		t.Errorf("stale gets waited %v for the refresh", d)
	}
	time.Sleep(100 * time.Millisecond)
	if n := src.calls.Load(); n != 2 {
		t.Errorf("20 stale requests made %d refreshes, want 1", n-1)
	}
	if r, _ := c.get(context.Background(), q); r == res[0] {
		t.Error("the refreshed answer was not published")
	}
	if r, _ := c.get(context.Background(), flowtable.FlowQuery{Limit: 10}); r == nil || r.recs[0].PacketsTx != 10 {
		t.Errorf("another query got %+v", r)
	}
}

// TestTopCacheClientGone: when every request waiting for a selection has
// given up, the selection is cancelled (the worker skips a request whose
// context ended), and the next request starts a new one.
func TestTopCacheClientGone(t *testing.T) {
	src := &slowTops{hold: time.Hour}
	c := newTopCache(src, time.Second)
	q := flowtable.FlowQuery{Limit: 5, Proto: "TCP"}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			defer cancel()
			if _, err := c.get(ctx, q); err == nil {
				t.Error("a request got an answer the sensor never gave")
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(2 * time.Second)
	for src.cancelled.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if src.calls.Load() != 1 || src.cancelled.Load() != 1 {
		t.Fatalf("%d selections, %d cancelled; want 1 and 1", src.calls.Load(), src.cancelled.Load())
	}
	src.hold = 0
	if r, err := c.get(context.Background(), q); err != nil || r == nil {
		t.Fatalf("after the clients left: %v", err)
	}
	if src.calls.Load() != 2 {
		t.Errorf("%d selections, want a new one", src.calls.Load())
	}
}

// TestTopCacheBounded: past maxTopKeys distinct queries a query is
// answered for its request alone, and the cache holds no more entries.
func TestTopCacheBounded(t *testing.T) {
	src := &slowTops{}
	c := newTopCache(src, time.Minute)
	for i := range maxTopKeys + 10 {
		if _, err := c.get(context.Background(), flowtable.FlowQuery{Limit: 1 + i}); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.entries) != maxTopKeys {
		t.Errorf("%d entries, want %d", len(c.entries), maxTopKeys)
	}
}

// TestTopCacheWorkerShare: however many distinct queries the clients ask,
// the selections take at most about 1/dutyCycle of the workers' time.
func TestTopCacheWorkerShare(t *testing.T) {
	src := &slowTops{hold: 5 * time.Millisecond}
	c := newTopCache(src, time.Millisecond)
	const run = time.Second
	end := time.Now().Add(run)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(end); n++ {
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				c.get(ctx, flowtable.FlowQuery{Limit: 1 + (i+n)%8})
				cancel()
			}
		}()
	}
	wg.Wait()
	busy := time.Duration(src.calls.Load()) * src.hold
	t.Logf("%d selections of %v in %v", src.calls.Load(), src.hold, run)
	if busy > run/dutyCycle+20*time.Millisecond {
		t.Errorf("selections took %v of %v, over 1/%d", busy, run, dutyCycle)
	}
}
