package httpd_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/netsentry/netsentry/httpd"
	"github.com/netsentry/netsentry/store"
)

// realStore is a real store and flow history on a temporary directory.
type realStore struct {
	st *store.Store
	fl *store.FlowLog
}

func (r realStore) StoreStats() store.Stats    { return r.st.Stats() }
func (r realStore) FlowStats() store.FlowStats { return r.fl.Stats() }

// TestStoreMetrics: the store's own counters in /metrics, read from a real
// store that took 3 ticks of 2 series and refused one out of order;
// promtool-clean.
func TestStoreMetrics(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fl, err := store.OpenFlowLog(st.DB(), store.FlowOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fl.Close(); st.Close() })
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		smp := []store.Sample{{Name: "a_total", Value: float64(i)}, {Name: "b", Labels: []store.Label{{Name: "x", Value: "1"}}, Value: 2}}
		if err := st.Append(t0.Add(time.Duration(i)*5*time.Second), smp); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Append(t0, []store.Sample{{Name: "a_total", Value: 9}}); err == nil {
		t.Fatal("out-of-order tick accepted")
	}
	ts := newTestServerWith(t, func(o *httpd.Options) { o.StoreMetrics = realStore{st, fl} })
	text := string(ts.do("GET", "/metrics", "", nil).body)
	disk := st.Stats().DiskBytes
	if disk <= 0 {
		t.Fatalf("store disk bytes %d", disk)
	}
	for _, want := range []string{
		`netsentry_store_series 2`,
		`netsentry_store_samples_appended_total 6`,
		`netsentry_store_append_errors_total 1`,
		`netsentry_store_samples_rejected_total 0`,
		`netsentry_store_chunks_written_total 0`,
		`netsentry_store_partitions{data="series"} 1`,
		`netsentry_store_partitions{data="flows"} 0`,
		`netsentry_store_partitions_dropped_total{data="series",reason="retention"} 0`,
		`netsentry_store_partitions_dropped_total{data="flows",reason="disk_cap"} 0`,
		`netsentry_store_flow_records 0`,
		`netsentry_store_retention_errors_total 0`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	for _, fam := range []string{"netsentry_store_disk_bytes ", "netsentry_store_compactions_total ", "netsentry_store_flow_bytes "} {
		if !strings.Contains(text, "\n"+fam) {
			t.Errorf("/metrics lacks %s", fam)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not installed (Debian package prometheus; make deps)")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
