package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// underSystemd reports whether systemd started the process (it sets
// INVOCATION_ID for every unit, JOURNAL_STREAM when stderr is the journal).
func underSystemd() bool {
	return os.Getenv("INVOCATION_ID") != "" || os.Getenv("JOURNAL_STREAM") != ""
}

// newLogger returns the daemon's logger: JSON under systemd (the journal
// keeps the fields), else the product's text lines
// "[2025-04-26 14:32:10] [INFO] message key=value".
func newLogger(w io.Writer, level *slog.LevelVar) *slog.Logger {
	if underSystemd() {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	}
	return slog.New(&textHandler{w: w, level: level, mu: &sync.Mutex{}})
}

// parseLevel maps log_level to a slog level.
func parseLevel(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// textHandler writes one line per record in the product's terminal format.
type textHandler struct {
	w     io.Writer
	level *slog.LevelVar
	mu    *sync.Mutex
	attrs []slog.Attr
	group string
}

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *textHandler) Handle(_ context.Context, r slog.Record) error {
	var b []byte
	b = append(b, '[')
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	b = t.AppendFormat(b, "2006-01-02 15:04:05")
	b = append(b, "] ["...)
	lv := r.Level.String()
	if lv == "WARN" {
		lv = "WARNING"
	}
	b = append(b, lv...)
	b = append(b, "] "...)
	b = append(b, r.Message...)
	for _, a := range h.attrs {
		b = appendAttr(b, h.group, a)
	}
	r.Attrs(func(a slog.Attr) bool {
		b = appendAttr(b, h.group, a)
		return true
	})
	b = append(b, '\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.w.Write(b)
	return err
}

func appendAttr(b []byte, group string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	if a.Value.Kind() == slog.KindGroup {
		g := a.Key
		if group != "" {
			g = group + "." + g
		}
		for _, ga := range a.Value.Group() {
			b = appendAttr(b, g, ga)
		}
		return b
	}
	b = append(b, ' ')
	if group != "" {
		b = append(b, group...)
		b = append(b, '.')
	}
	b = append(b, a.Key...)
	b = append(b, '=')
	s := a.Value.String()
	if a.Value.Kind() == slog.KindAny {
		s = fmt.Sprint(a.Value.Any())
	}
	if s == "" || strings.ContainsAny(s, " \t\n\"=") {
		s = strconv.Quote(s)
	}
	return append(b, s...)
}

func (h *textHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append(append([]slog.Attr{}, h.attrs...), as...)
	return &n
}

func (h *textHandler) WithGroup(name string) slog.Handler {
	n := *h
	if n.group != "" {
		name = n.group + "." + name
	}
	n.group = name
	return &n
}
