package httpd

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netsentry/netsentry/flowtable"
)

// topCache shares the answer of each connections query (sort, limit,
// filters: a flowtable.FlowQuery) among every request that asks it. The
// workers select a query's flows (Sensor.TopFlows) at most once per ttl
// (longer when the selection took long: dutyCycle), and the response is
// rendered once per selection. Past ttl the next request starts a
// refresh in the background and, like every request until it is done,
// gets the previous answer, unless that is older than maxStale: then the
// requests wait for the refresh, all of them for the same one. A refresh
// that no request waits for any more (their deadlines passed) is
// cancelled, and a worker that takes it after that skips it: a client that
// has gone keeps no work alive. At most maxTopKeys queries are kept; past
// that a query is answered for its own request alone.
//
// The workers' share is bounded across queries, not per query: one
// selection runs at a time, and after a selection that took d the next
// starts no sooner than (dutyCycle-1)×d later, so the API costs the
// workers at most 1/dutyCycle of their time however many distinct queries
// the clients ask (the busier the workers, the staler the answers).
type topCache struct {
	src     Sensor
	ttl     time.Duration
	mu      sync.Mutex
	entries map[flowtable.FlowQuery]*topEntry
	gate    chan struct{} // held by the one selection running
	next    time.Time     // when the next selection may start; guarded by gate
}

const maxTopKeys = 256

// topEntry is one query's latest answer and the refresh in flight.
type topEntry struct {
	q     flowtable.FlowQuery
	cur   atomic.Pointer[topResult]
	asked atomic.Int64 // wall-clock ns of the latest request
	mu    sync.Mutex   // guards call
	call  *topCall
}

// topResult is one selection and the response rendered from it.
type topResult struct {
	recs []flowtable.Record
	at   time.Time
	ttl  time.Duration
	once sync.Once
	body []byte
}

// render returns the response, made by f once; the bytes are shared: never
// modify them.
func (r *topResult) render(f func(*topResult) []byte) []byte {
	r.once.Do(func() { r.body = f(r) })
	return r.body
}

// topCall is one selection in flight and the requests waiting for it.
type topCall struct {
	done       chan struct{}
	res        *topResult
	err        error
	waiters    int
	background bool // started for a stale answer: not cancelled by its waiters
	cancel     context.CancelFunc
}

func newTopCache(src Sensor, ttl time.Duration) *topCache {
	return &topCache{src: src, ttl: ttl, entries: map[flowtable.FlowQuery]*topEntry{},
		gate: make(chan struct{}, 1)}
}

// get returns q's answer: shared, at most ttl old, or at most maxStale old
// while a refresh runs.
func (c *topCache) get(ctx context.Context, q flowtable.FlowQuery) (*topResult, error) {
	if r, e := c.cached(q); r != nil {
		return r, nil
	} else if e != nil {
		return c.wait(ctx, e)
	}
	return c.uncached(ctx, q)
}

// cached returns q's answer when one may be served now (starting a
// refresh in the background for a stale one), else q's entry to wait on
// (nil when the cache has no room for q).
func (c *topCache) cached(q flowtable.FlowQuery) (*topResult, *topEntry) {
	now := time.Now()
	e := c.entry(q, now)
	if e == nil {
		return nil, nil
	}
	e.asked.Store(now.UnixNano())
	if cur := e.cur.Load(); cur != nil {
		age := now.Sub(cur.at)
		if age < cur.ttl {
			return cur, e
		}
		if age < maxStale {
			c.start(e, true)
			return cur, e
		}
	}
	return nil, e
}

// entry returns q's entry, making it if there is room (entries nobody
// asked for in maxStale make room); nil if there is none.
func (c *topCache) entry(q flowtable.FlowQuery, now time.Time) *topEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[q]; e != nil {
		return e
	}
	if len(c.entries) >= maxTopKeys {
		for k, e := range c.entries {
			if now.UnixNano()-e.asked.Load() > int64(maxStale) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxTopKeys {
			return nil
		}
	}
	e := &topEntry{q: q}
	c.entries[q] = e
	return e
}

// start returns e's refresh in flight, starting one if none is; a
// background start adds no waiter.
func (c *topCache) start(e *topEntry, background bool) *topCall {
	e.mu.Lock()
	defer e.mu.Unlock()
	if cl := e.call; cl != nil {
		if !background {
			cl.waiters++
		}
		return cl
	}
	ctx, cancel := context.WithTimeout(context.Background(), snapshotWait)
	cl := &topCall{done: make(chan struct{}), background: background, cancel: cancel}
	if !background {
		cl.waiters = 1
	}
	e.call = cl
	go func() {
		defer cancel()
		recs, took, err := c.selectFlows(ctx, e.q)
		if err == nil {
			cl.res = &topResult{recs: recs, at: time.Now(), ttl: max(c.ttl, dutyCycle*took)}
			e.cur.Store(cl.res)
		}
		cl.err = err
		e.mu.Lock()
		if e.call == cl {
			e.call = nil
		}
		e.mu.Unlock()
		close(cl.done)
	}()
	return cl
}

// wait waits for e's refresh (starting one) or for ctx; the last waiter to
// give up cancels a refresh it started.
func (c *topCache) wait(ctx context.Context, e *topEntry) (*topResult, error) {
	cl := c.start(e, false)
	select {
	case <-cl.done:
		return cl.res, cl.err
	case <-ctx.Done():
		e.mu.Lock()
		cl.waiters--
		if cl.waiters <= 0 && !cl.background {
			cl.cancel()
			if e.call == cl {
				e.call = nil // the next request starts afresh
			}
		}
		e.mu.Unlock()
		return nil, ctx.Err()
	}
}

// uncached answers a query the cache has no room for, for this request.
func (c *topCache) uncached(ctx context.Context, q flowtable.FlowQuery) (*topResult, error) {
	recs, _, err := c.selectFlows(ctx, q)
	if err != nil {
		return nil, err
	}
	return &topResult{recs: recs, at: time.Now()}, nil
}

// selectFlows asks the sensor for q's flows when the workers' API share
// allows (see topCache), and says how long the selection took.
func (c *topCache) selectFlows(ctx context.Context, q flowtable.FlowQuery) ([]flowtable.Record, time.Duration, error) {
	select {
	case c.gate <- struct{}{}:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	defer func() { <-c.gate }()
	if wait := time.Until(c.next); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, 0, ctx.Err()
		}
	}
	start := time.Now()
	recs, err := c.src.TopFlows(ctx, q)
	took := time.Since(start)
	if err == nil {
		// A failed selection (workers of a capture that stopped, a timeout)
		// cost the workers nothing to speak of: it spaces nothing, else one
		// stalled request would hold every query back for dutyCycle times
		// its timeout. maxSpacing keeps a slow one from doing the same.
		c.next = time.Now().Add(min((dutyCycle-1)*took, maxSpacing))
	}
	return recs, took, err
}

// maxSpacing bounds the pause after one selection, below the requests'
// own deadline, so that the next request can still be answered.
const maxSpacing = 2 * time.Second

// reset forgets every answer (the capture started or stopped).
func (c *topCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
}
