//go:build withstore

// This test needs store.OpenFlowLog (FLOWS) and pebble; it was run in a
// merged tree. Remove the build line above once they are merged.

package httpd_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/netsentry/netsentry/flowtable"
	"github.com/netsentry/netsentry/httpd"
	"github.com/netsentry/netsentry/store"
)

// TestFlowsStore: the flow history of issue 11's FLOWS part (FlowLog on
// pebble) behind /api/v1/network/flows pages back every record of a
// replay exactly as --flows-out writes it, schema-checked; a bad cursor
// and an unknown protocol are 400.
func TestFlowsStore(t *testing.T) {
	db, err := pebble.Open("db", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fl, err := store.OpenFlowLog(db, store.FlowOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snap := replayState(t, "zeek-http-bro.org.pcap")
	var recs []flowtable.Record
	for _, w := range snap.Flows {
		recs = append(recs, w...)
	}
	if err := fl.WriteFlows(recs); err != nil {
		t.Fatal(err)
	}
	ts := newTestServerWith(t, func(o *httpd.Options) { o.Flows = fl })
	var got []string
	cursor := ""
	for {
		path := "/api/v1/network/flows?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := ts.do("GET", path, "", nil)
		ts.check("/api/v1/network/flows", "GET", r)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		var page struct {
			Flows      []json.RawMessage
			NextCursor string `json:"next_cursor"`
		}
		json.Unmarshal(r.body, &page)
		for _, f := range page.Flows {
			got = append(got, string(f))
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	var want []string
	for i := range recs {
		want = append(want, string(recs[i].AppendJSON(nil, nil)))
	}
	slices.Sort(want)
	sg := slices.Clone(got)
	slices.Sort(sg)
	if !slices.Equal(sg, want) {
		t.Errorf("%d records, want %d\n%v\n%v", len(got), len(want), got, want)
	}
	t.Logf("%d records paged back", len(got))
	for _, q := range []string{"?cursor=zz!", "?protocol=999"} {
		r := ts.do("GET", "/api/v1/network/flows"+q, "", nil)
		if r.status != 400 {
			t.Errorf("%s: %d %s", q, r.status, r.body)
		}
	}
}
