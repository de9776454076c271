package httpd

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// snapCache shares one snapshot among every request for ttl. While a fresh
// one is being made, requests get the previous one (up to staleFor old);
// only one refresh runs at a time, so the workers see at most one snapshot
// request per ttl whatever the number of clients.
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

const maxRenders = 256 // rendered responses kept per snapshot

func newSnapCache(src Sensor, parts Parts, ttl time.Duration) *snapCache {
	return &snapCache{src: src, parts: parts, ttl: ttl, staleFor: 8 * ttl}
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

// render returns the response for key, made by f once per snapshot.
func (c *cached) render(key string, f func() []byte) []byte {
	if b, ok := c.renders.Load(key); ok {
		return b.([]byte)
	}
	b := f()
	if c.nRender.Add(1) <= maxRenders {
		c.renders.Store(key, b)
	}
	return b
}
