package alerting

import (
	"net/http"
	"testing"
	"time"
)

// BenchmarkDispatcherSend: the cost the evaluator pays per notification, with the channel's
// goroutine stuck on a hung receiver: "queued" while the queue has room, "dropped" once full.
func BenchmarkDispatcherSend(b *testing.B) {
	for _, bc := range []struct {
		name  string
		queue int
	}{{"queued", 1 << 20}, {"dropped", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			release := make(chan struct{})
			r := ntNewReceiver(b, func(n int64, w http.ResponseWriter) bool { <-release; return true })
			d := NewDispatcher(NotifyOptions{Timeout: time.Minute, Retries: -1, QueueSize: bc.queue})
			n := ntWebhookNote(r.srv.URL)
			d.Send(n)
			ntWait(b, time.Second, "the hung request", func() bool { return r.hits.Load() == 1 })
			d.Send(n)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				d.Send(n)
			}
			b.StopTimer()
			if bc.queue == 1 && ntStats(b, d, r.srv.URL).Dropped != uint64(b.N) {
				b.Fatalf("stats %+v", ntStats(b, d, r.srv.URL))
			}
			close(release)
			ntClose(b, d)
		})
	}
}
