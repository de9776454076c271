package httpd

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/netsentry/netsentry/flowtable"
)

// streamSlots counts the open event streams, in all and per client
// address.
type streamSlots struct {
	mu        sync.Mutex
	open      int
	perClient map[netip.Addr]int
	// Counters for /metrics.
	dropped        atomic.Uint64 // subscribers that stopped reading, dropped
	rejectedClient atomic.Uint64 // 429: the client address holds MaxStreamsPerClient
	rejectedServer atomic.Uint64 // 503: MaxStreams are open
}

// take reserves a slot for a; 0 when it got one, else the status to answer.
func (sl *streamSlots) take(a netip.Addr) int {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	switch {
	case sl.perClient[a] >= MaxStreamsPerClient:
		sl.rejectedClient.Add(1)
		return fasthttp.StatusTooManyRequests
	case sl.open >= MaxStreams:
		sl.rejectedServer.Add(1)
		return fasthttp.StatusServiceUnavailable
	}
	sl.open++
	sl.perClient[a]++
	return 0
}

func (sl *streamSlots) release(a netip.Addr) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	sl.open--
	if sl.perClient[a]--; sl.perClient[a] <= 0 {
		delete(sl.perClient, a)
	}
}

// stream serves Server-Sent Events: every second an event "metrics" (the
// /api/v1/metrics document, without host metrics when there are none) and
// an event "connections" (the top 10 connections by bytes). A client that
// does not read is dropped once its socket buffer has stayed full for
// StreamWriteTimeout; one client address holds MaxStreamsPerClient
// streams at most (429 past that), the server MaxStreams (503).
func (s *Server) stream(ctx *fasthttp.RequestCtx) {
	if _, msg := parseQuery(ctx); msg != "" {
		writeProblem(ctx, fasthttp.StatusBadRequest, msg)
		return
	}
	client := clientAddr(ctx)
	switch s.streams.take(client) {
	case fasthttp.StatusTooManyRequests:
		ctx.Response.Header.Set("Retry-After", "10")
		writeProblem(ctx, fasthttp.StatusTooManyRequests,
			"this client address has "+strconv.Itoa(MaxStreamsPerClient)+" event streams open already; close one")
		return
	case fasthttp.StatusServiceUnavailable:
		ctx.Response.Header.Set("Retry-After", "10")
		writeProblem(ctx, fasthttp.StatusServiceUnavailable, "too many event streams open; try again later")
		return
	}
	conn := ctx.Conn()
	hc, _ := conn.(*headConn)
	if hc != nil {
		if tc, ok := hc.Conn.(*net.TCPConn); ok {
			tc.SetWriteBuffer(StreamSendBuffer)
		}
	}
	// The stream outlives WriteTimeout; each round gets a deadline instead.
	ctx.SetWriteDeadline(time.Time{})
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("X-Accel-Buffering", "no")
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer s.streams.release(client)
		t := time.NewTicker(s.opt.StreamInterval)
		defer t.Stop()
		w.WriteString("retry: 2000\n\n")
		for {
			// fasthttp copies what w holds to the connection on the
			// connection's goroutine; a write blocked past this deadline
			// (the client's buffers full) fails there, closes the stream
			// and so makes the next write here fail.
			conn.SetWriteDeadline(time.Now().Add(s.opt.StreamWriteTimeout))
			if !s.writeEvents(w) || w.Flush() != nil {
				if hc != nil && hc.writeTimeout.Load() {
					s.streams.dropped.Add(1)
					s.log.Info("api: event stream dropped: the client did not read for "+s.opt.StreamWriteTimeout.String(),
						"client", client.String())
				}
				return
			}
			select {
			case <-s.done:
				return
			case <-t.C:
			}
		}
	})
}

// clientAddr is the address of the client, IPv4-mapped addresses unmapped.
func clientAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	if ta, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// writeEvents writes one round of events; false when the data could not be
// had (the stream ends, the client reconnects).
func (s *Server) writeEvents(w *bufio.Writer) bool {
	ctx, cancel := context.WithTimeout(context.Background(), snapshotWait)
	defer cancel()
	c, err := s.light.get(ctx)
	if err != nil {
		return false
	}
	netDoc, _ := s.sensorMetrics(c)
	doc := map[string]any{"sensor": netDoc}
	if s.opt.Host != nil {
		if hdoc, _, err := s.opt.Host.HostMetrics(); err == nil {
			for k, v := range hdoc {
				doc[k] = v
			}
		}
	}
	b, err := json.Marshal(map[string]any{"timestamp": time.Now().UTC().Format(tsFormat), "host": s.hostname, "metrics": doc})
	if err != nil {
		return false
	}
	w.WriteString("event: metrics\ndata: ")
	w.Write(b)
	w.WriteString("\n\n")
	fc, err := s.tops.get(ctx, flowtable.FlowQuery{Limit: 10, By: flowtable.ByBytes})
	if err != nil {
		return false
	}
	w.WriteString("event: connections\ndata: ")
	w.Write(fc.render(func(r *topResult) []byte { return renderConnections(r, s.opt.Geo) }))
	w.WriteString("\n\n")
	return true
}
