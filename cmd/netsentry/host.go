package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/netsentry/netsentry/engine/sampler"
)

// hostSource adapts the host sampler to httpd.HostMetrics. The JSON form
// of a sample is made once per sample.
type hostSource struct {
	s    *sampler.Sampler
	mu   sync.Mutex
	at   time.Time
	doc  map[string]any
	flat map[string]float64
}

var errNoSample = errors.New("host metrics: the first sample is not taken yet")

// HostMetrics implements httpd.HostMetrics.
func (h *hostSource) HostMetrics() (map[string]any, map[string]float64, error) {
	snap := h.s.Latest()
	if snap.Timestamp.IsZero() {
		return nil, nil, errNoSample
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !snap.Timestamp.Equal(h.at) {
		b, err := json.Marshal(snap.Metrics)
		if err != nil {
			return nil, nil, fmt.Errorf("host metrics: %w", err)
		}
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			return nil, nil, fmt.Errorf("host metrics: %w", err)
		}
		h.at, h.doc, h.flat = snap.Timestamp, doc, snap.Dotted()
	}
	return h.doc, h.flat, nil
}
