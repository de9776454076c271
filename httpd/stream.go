package httpd

import (
	"bufio"
	"context"
	"encoding/json"
	"time"

	"github.com/valyala/fasthttp"
)

// stream serves Server-Sent Events: every second an event "metrics" (the
// /api/v1/metrics document, without host metrics when there are none) and
// an event "connections" (the top 10 connections by bytes).
func (s *Server) stream(ctx *fasthttp.RequestCtx) {
	if _, msg := parseQuery(ctx); msg != "" {
		writeProblem(ctx, fasthttp.StatusBadRequest, msg)
		return
	}
	if s.streams.Add(1) > MaxStreams {
		s.streams.Add(-1)
		writeProblem(ctx, fasthttp.StatusServiceUnavailable, "too many event streams open; try again later")
		return
	}
	conn := ctx.Conn()
	// The stream outlives WriteTimeout; each event gets a deadline instead.
	ctx.SetWriteDeadline(time.Time{})
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("X-Accel-Buffering", "no")
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer s.streams.Add(-1)
		t := time.NewTicker(streamInterval)
		defer t.Stop()
		w.WriteString("retry: 2000\n\n")
		for {
			conn.SetWriteDeadline(time.Now().Add(WriteTimeout))
			if !s.writeEvents(w) || w.Flush() != nil {
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
	fc, err := s.conns.get(ctx)
	if err != nil {
		return false
	}
	w.WriteString("event: connections\ndata: ")
	w.Write(fc.render("stream", func(c *cached) []byte {
		return renderConnections(c, connFilter{sort: "bytes", limit: 10, geo: s.opt.Geo})
	}))
	w.WriteString("\n\n")
	return true
}
