package httpd

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// snapCache shares one snapshot among every request for ttl (longer for a
// snapshot that took long to make: see dutyCycle). Past that the
// next request starts a refresh in the background and, like every request
// until it is done, gets the previous snapshot, unless that one is older
// than staleFor: then the request waits for a fresh one. Only one refresh
// runs at a time, so the workers see at most one snapshot request per ttl
// whatever the number of clients, and a busy box delays the data, not the
// answers.
type snapCache struct {
	src        Sensor
	parts      Parts
	ttl        time.Duration
	staleFor   time.Duration
	cur        atomic.Pointer[cached]
	mu         sync.Mutex // held by the one refresh running
	refreshing atomic.Bool
}

// cached is one snapshot and the responses rendered from it.
type cached struct {
	snap    Snapshot
	at      time.Time
	renders sync.Map // query key -> []byte
	nRender atomic.Int32
	ttl     time.Duration // how long this snapshot is fresh
}

const (
	maxRenders = 256              // rendered responses kept per snapshot
	maxStale   = 10 * time.Second // oldest snapshot served while a refresh runs
	dutyCycle  = 10               // a snapshot stays fresh at least 10 times as long as it took
)

func newSnapCache(src Sensor, parts Parts, ttl time.Duration) *snapCache {
	return &snapCache{src: src, parts: parts, ttl: ttl, staleFor: maxStale}
}

// get returns a snapshot at most ttl old, or one at most staleFor old while
// a refresh runs in the background.
func (c *snapCache) get(ctx context.Context) (*cached, error) {
	cur := c.cur.Load()
	if pub, ok := c.src.(Publisher); ok {
		// The snapshot is the sensor's latest: as fresh as the sensor's
		// interval, and cheap to get (the sensor made it already).
		if cur != nil && cur.snap.Seq == pub.Published() {
			return cur, nil
		}
		return c.refresh(ctx, cur)
	}
	if cur != nil {
		age := time.Since(cur.at)
		if age < cur.ttl {
			return cur, nil
		}
		if age < c.staleFor {
			if c.refreshing.CompareAndSwap(false, true) {
				go func() {
					defer c.refreshing.Store(false)
					ctx, cancel := context.WithTimeout(context.Background(), snapshotWait)
					defer cancel()
					c.refresh(ctx, cur)
				}()
			}
			return cur, nil
		}
	}
	return c.refresh(ctx, cur)
}

// refresh makes a new snapshot unless another refresh replaced old already.
func (c *snapCache) refresh(ctx context.Context, old *cached) (*cached, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := c.cur.Load(); cur != old && cur != nil && time.Since(cur.at) < cur.ttl {
		return cur, nil
	}
	if pub, ok := c.src.(Publisher); ok {
		if cur := c.cur.Load(); cur != nil && cur.snap.Seq == pub.Published() {
			return cur, nil // another request refreshed it while this one waited
		}
	}
	start := time.Now()
	snap, err := c.src.Snapshot(ctx, c.parts)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	// A snapshot that took long (many flows, a busy box) is kept longer,
	// so that making snapshots never takes more than 1/dutyCycle of the
	// time: the packet workers do the copying.
	n := &cached{snap: snap, at: now, ttl: max(c.ttl, dutyCycle*now.Sub(start))}
	if old != nil {
		n.prerender(old)
	}
	c.cur.Store(n)
	return n, nil
}

// prerenderKeys is how many of the previous snapshot's most asked
// responses a refresh renders before it publishes the new snapshot, so
// that no request waits for a render in the steady state.
const prerenderKeys = 8

func (c *cached) prerender(old *cached) {
	type hot struct {
		key  string
		r    *rendered
		hits int64
	}
	var top []hot
	old.renders.Range(func(k, v any) bool {
		r := v.(*rendered)
		top = append(top, hot{k.(string), r, r.hits.Load()})
		return true
	})
	slices.SortFunc(top, func(a, b hot) int { return cmp.Compare(b.hits, a.hits) })
	for _, h := range top[:min(len(top), prerenderKeys)] {
		if h.hits > 1 {
			c.render(h.key, h.r.f)
		}
	}
}

// rendered is one response made from a snapshot; the first request for
// it makes it, concurrent ones wait for that instead of making it again.
type rendered struct {
	once sync.Once
	b    []byte
	f    func(*cached) []byte
	hits atomic.Int64
}

// render returns the response for key, made by f once per snapshot (past
// maxRenders keys, once per request). The bytes are shared: never modify
// them.
func (c *cached) render(key string, f func(*cached) []byte) []byte {
	v, ok := c.renders.Load(key)
	if !ok {
		if c.nRender.Load() >= maxRenders {
			return f(c)
		}
		c.nRender.Add(1)
		v, _ = c.renders.LoadOrStore(key, &rendered{f: f})
	}
	r := v.(*rendered)
	r.hits.Add(1)
	r.once.Do(func() { r.b = f(c) })
	return r.b
}
