package httpd

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// snapCache shares one snapshot among every request for ttl. Past ttl the
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
}

const (
	maxRenders = 256              // rendered responses kept per snapshot
	maxStale   = 10 * time.Second // oldest snapshot served while a refresh runs
)

func newSnapCache(src Sensor, parts Parts, ttl time.Duration) *snapCache {
	return &snapCache{src: src, parts: parts, ttl: ttl, staleFor: maxStale}
}

// get returns a snapshot at most ttl old, or one at most staleFor old while
// a refresh runs in the background.
func (c *snapCache) get(ctx context.Context) (*cached, error) {
	cur := c.cur.Load()
	if cur != nil {
		age := time.Since(cur.at)
		if age < c.ttl {
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
	if cur := c.cur.Load(); cur != old && cur != nil && time.Since(cur.at) < c.ttl {
		return cur, nil
	}
	snap, err := c.src.Snapshot(ctx, c.parts)
	if err != nil {
		return nil, err
	}
	n := &cached{snap: snap, at: time.Now()}
	c.cur.Store(n)
	return n, nil
}

// rendered is one response made from a snapshot; the first request for
// it makes it, concurrent ones wait for that instead of making it again.
type rendered struct {
	once sync.Once
	b    []byte
}

// render returns the response for key, made by f once per snapshot (past
// maxRenders keys, once per request). The bytes are shared: never modify
// them.
func (c *cached) render(key string, f func() []byte) []byte {
	v, ok := c.renders.Load(key)
	if !ok {
		if c.nRender.Load() >= maxRenders {
			return f()
		}
		c.nRender.Add(1)
		v, _ = c.renders.LoadOrStore(key, &rendered{})
	}
	r := v.(*rendered)
	r.once.Do(func() { r.b = f() })
	return r.b
}
