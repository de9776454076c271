//go:build !linux

package engine

import "context"

// Live is a live capture; only Linux has one.
type Live struct{}

// NewLive returns ErrNotSupported on this OS.
func NewLive(cfg LiveConfig) (*Live, error) { return nil, ErrNotSupported }

// FanoutMode returns "".
func (l *Live) FanoutMode() string { return "" }

// Geometry returns "".
func (l *Live) Geometry() string { return "" }

// Workers returns nil.
func (l *Live) Workers() []*Worker { return nil }

// Stats returns nil.
func (l *Live) Stats() []QueueStats { return nil }

// Run returns ErrNotSupported.
func (l *Live) Run(ctx context.Context) error { return ErrNotSupported }

// Close does nothing.
func (l *Live) Close() error { return nil }
