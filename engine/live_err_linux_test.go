package engine

import (
	"strings"
	"testing"

	"github.com/netsentry/netsentry/flowtable"
)

// TestNewLiveBadInterface: an interface that does not exist is a clean
// error naming it (the half-opened capture is closed, no panic).
func TestNewLiveBadInterface(t *testing.T) {
	_, err := NewLive(LiveConfig{Interfaces: []string{"nsnoexist0"}, Queues: 1, RingMB: 2,
		NewShard: func(int) (*flowtable.Shard, error) { return flowtable.New(flowtable.Config{}, nil) }})
	if err == nil || !strings.Contains(err.Error(), "nsnoexist0") {
		t.Fatalf("err = %v, want an error naming the interface", err)
	}
}
