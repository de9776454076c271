package engine

import "github.com/netsentry/netsentry/flowtable"

// SendWait queues a copy of recs like Send, but waits while the queue is
// full, whatever the Exporter's Block setting. Live capture uses it for the
// final flush at shutdown, when waiting can no longer cost packets.
func (x *Exporter) SendWait(recs []flowtable.Record) {
	x.queue <- append(x.buffer(), recs...)
}
