package httpd_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netsentry/netsentry/alerting"
	"github.com/netsentry/netsentry/httpd"
)

// alertCatalog knows the description's metrics: cpu.usage, a gauge, and
// the per-source counts of its port-scan rule.
type alertCatalog struct{}

func (alertCatalog) Metric(name string) (alerting.MetricKind, []string, bool) {
	switch name {
	case "cpu.usage":
		return alerting.Gauge, nil, true
	case "network.connection_count", "network.unique_dest_port_count":
		return alerting.Count, []string{"src_ip"}, true
	}
	return 0, nil, false
}

// The description's two rule examples, verbatim (the bodies of its curl -d).
const (
	descHighCPU = `{
"name": "High CPU Usage",
"metric": "cpu.usage",
"comparator": "gt",
"threshold": 90.0,
"severity": "warning"
}`
	descPortScan = `{
"name": "Potential Port Scan",
"description": "Detects potential port scanning activity",
"conditions": [
{
"metric": "network.connection_count",
"filter": "src_ip = $src_ip",
"comparator": "gt",
"threshold": 100,
"time_range": "60s"
},
{
"metric": "network.unique_dest_port_count",
"filter": "src_ip = $src_ip",
"comparator": "gt",
"threshold": 20,
"time_range": "60s"
}
],
"condition_logic": "AND",
"severity": "critical",
"throttle_sec": 300,
"notifications": [
{
"type": "email",
"recipients": ["security@example.com"]
},
{
"type": "webhook",
"url": "https://example.com/security-alerts"
}
]
}`
)

// fakeAlertState serves fixed alerts and records the history range asked.
type fakeAlertState struct {
	mu         sync.Mutex
	active     []alerting.Alert
	start, end time.Time
}

func (f *fakeAlertState) Active() []alerting.Alert { return f.active }

func (f *fakeAlertState) History(start, end time.Time) []alerting.Alert {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.start, f.end = start, end
	return f.active
}

func newAlertServer(t *testing.T, token string) (*testServer, string, *fakeAlertState) {
	t.Helper()
	dir := t.TempDir()
	rules, errs := alerting.LoadRules(dir, alertCatalog{})
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	st := &fakeAlertState{}
	ts := newTestServerWith(t, func(o *httpd.Options) { o.Token, o.Alerts, o.AlertState = token, rules, st })
	return ts, dir, st
}

// ruleJSON decodes a rule body as the API shows it.
func ruleJSON(t *testing.T, text string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestAlertRulesAPI: the description's two rules round-trip through the
// API, and what it stores survives a reload of the directory.
func TestAlertRulesAPI(t *testing.T) {
	ts, dir, _ := newAlertServer(t, "")
	// As the description's rules read, the short form as its one condition.
	wantCPU := ruleJSON(t, `{"name":"High CPU Usage","severity":"warning","conditions":[{"metric":"cpu.usage","comparator":"gt","threshold":90}]}`)
	wantScan := ruleJSON(t, descPortScan)
	ids := map[string]string{}
	for _, c := range []struct {
		body string
		want map[string]any
	}{{descHighCPU, wantCPU}, {descPortScan, wantScan}} {
		r := ts.do("POST", "/api/v1/alerts", "application/json", []byte(c.body))
		if r.status != 201 {
			t.Fatalf("POST: %d %s", r.status, r.body)
		}
		got := ts.check("/api/v1/alerts", "POST", r)
		id, _ := got["id"].(string)
		if len(id) != 16 {
			t.Fatalf("id %q", id)
		}
		delete(got, "id")
		if !reflect.DeepEqual(got, c.want) {
			t.Fatalf("POST answered\n%v\nwant\n%v", got, c.want)
		}
		ids[c.want["name"].(string)] = id
		r = ts.do("GET", "/api/v1/alerts/"+id, "", nil)
		if one := ts.check("/api/v1/alerts/{id}", "GET", r); r.status != 200 || one["id"] != id {
			t.Fatalf("GET %s: %d %s", id, r.status, r.body)
		}
	}
	// Location names the new rule.
	req, _ := http.NewRequest("POST", ts.base+"/api/v1/alerts", strings.NewReader(descHighCPU))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var third alerting.Rule
	json.NewDecoder(resp.Body).Decode(&third)
	resp.Body.Close()
	if resp.StatusCode != 201 || resp.Header.Get("Location") != "/api/v1/alerts/"+third.ID {
		t.Fatalf("POST: %d, Location %q for id %q", resp.StatusCode, resp.Header.Get("Location"), third.ID)
	}
	if r := ts.do("DELETE", "/api/v1/alerts/"+third.ID, "", nil); r.status != 204 || len(r.body) != 0 {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	if r := ts.do("GET", "/api/v1/alerts/"+third.ID, "", nil); r.status != 404 {
		t.Fatalf("GET deleted: %d", r.status)
	}

	// PUT replaces: the port scan rule at a 120 s throttle.
	scanID := ids["Potential Port Scan"]
	changed := strings.Replace(descPortScan, `"throttle_sec": 300`, `"throttle_sec": 120`, 1)
	r := ts.do("PUT", "/api/v1/alerts/"+scanID, "application/json", []byte(changed))
	if got := ts.check("/api/v1/alerts/{id}", "PUT", r); r.status != 200 || got["throttle_sec"] != 120.0 || got["id"] != scanID {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}

	r = ts.do("GET", "/api/v1/alerts", "", nil)
	list := ts.check("/api/v1/alerts", "GET", r)["rules"].([]any)
	if len(list) != 2 || list[0].(map[string]any)["name"] != "High CPU Usage" || list[1].(map[string]any)["throttle_sec"] != 120.0 {
		t.Fatalf("list: %s", r.body)
	}
	// A new rule set from the directory (a restart) has the same rules.
	again, errs := alerting.LoadRules(dir, alertCatalog{})
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	b, _ := json.Marshal(again.List())
	var reloaded []any
	json.Unmarshal(b, &reloaded)
	if !reflect.DeepEqual(reloaded, list) {
		t.Fatalf("after reload\n%s\nthe API had\n%s", b, r.body)
	}
	names, _ := os.ReadDir(dir)
	if len(names) != 2 {
		t.Fatalf("%d files in the rule directory, want 2", len(names))
	}
}

// TestAlertRulesAPIBad: bad requests get 4xx with every problem, and
// change nothing, in the API or in the directory.
func TestAlertRulesAPIBad(t *testing.T) {
	ts, dir, _ := newAlertServer(t, "")
	r := ts.do("POST", "/api/v1/alerts", "application/json", []byte(descPortScan))
	if r.status != 201 {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	id := ts.check("/api/v1/alerts", "POST", r)["id"].(string)
	before := ts.do("GET", "/api/v1/alerts/"+id, "", nil).body
	filesBefore, _ := os.ReadDir(dir)
	scan := func(old, new string) []byte { return []byte(strings.Replace(descPortScan, old, new, 1)) }
	big := append([]byte(descHighCPU), bytes.Repeat([]byte(" "), httpd.MaxBodyBytes)...)
	for _, c := range []struct {
		name, method, path, route, ct string
		body                          []byte
		status                        int
		errors                        []string
	}{
		{"unknown metric", "POST", "/api/v1/alerts", "/api/v1/alerts", "application/json", scan("network.connection_count", "foo.bar"), 422,
			[]string{`conditions[0].metric: "foo.bar": unknown metric (GET /api/v1/metrics lists them)`}},
		{"bad comparator", "POST", "/api/v1/alerts", "/api/v1/alerts", "application/json", []byte(strings.Replace(descHighCPU, `"gt"`, `"bigger"`, 1)), 422,
			[]string{`conditions[0].comparator: "bigger": want gt, gte, lt, lte, eq, ne (or > >= < <= == !=)`}},
		{"negative window", "POST", "/api/v1/alerts", "/api/v1/alerts", "application/json", scan(`"60s"`, `"-60s"`), 422,
			[]string{`conditions[0].time_range: "-60s": want from 1s to 24h`}},
		{"absurd window", "POST", "/api/v1/alerts", "/api/v1/alerts", "application/json", scan(`"60s"`, `"8760h"`), 422,
			[]string{`conditions[0].time_range: "8760h": want from 1s to 24h`}},
		{"filter on unknown key", "POST", "/api/v1/alerts", "/api/v1/alerts", "application/json", scan(`"src_ip = $src_ip"`, `"dst_ip = $src_ip"`), 422,
			[]string{`conditions[0].filter: key "dst_ip": metric network.connection_count has no such label (it has src_ip)`}},
		{"several at once", "POST", "/api/v1/alerts", "/api/v1/alerts", "application/json",
			[]byte(`{"name":"x","severity":"urgent","metric":"cpu.usage","comparator":"~","threshold":1,"notifications":[{"type":"webhook","url":"file:///etc/passwd"}]}`), 422,
			[]string{`severity: "urgent": want info, warning or critical`, `conditions[0].comparator: "~": want gt, gte, lt, lte, eq, ne (or > >= < <= == !=)`,
				`notifications[0].url: "file:///etc/passwd": want an absolute http or https URL`}},
		{"malformed JSON", "POST", "/api/v1/alerts", "/api/v1/alerts", "application/json", []byte(`{"name":`), 400,
			[]string{`not valid JSON: it ends early`}},
		{"unknown field", "POST", "/api/v1/alerts", "/api/v1/alerts", "application/json", scan(`"severity"`, `"priority"`), 400,
			[]string{`"priority": unknown field (want id, name, description, metric, comparator, threshold, conditions, condition_logic, severity, throttle_sec, notifications)`}},
		{"not an object", "POST", "/api/v1/alerts", "/api/v1/alerts", "application/json", []byte(`[]`), 400, nil},
		{"not JSON", "POST", "/api/v1/alerts", "/api/v1/alerts", "application/yaml", []byte("name: x\n"), 415, nil},
		{"1 MB body", "POST", "/api/v1/alerts", "/api/v1/alerts", "application/json", big, 413, nil},
		{"PUT 1 MB body", "PUT", "/api/v1/alerts/" + id, "/api/v1/alerts/{id}", "application/json", big, 413, nil},
		{"PUT bad rule", "PUT", "/api/v1/alerts/" + id, "/api/v1/alerts/{id}", "application/json", scan("critical", "severe"), 422,
			[]string{`severity: "severe": want info, warning or critical`}},
		{"PUT other id", "PUT", "/api/v1/alerts/" + id, "/api/v1/alerts/{id}", "application/json", []byte(`{"id":"abc",` + descHighCPU[1:]), 422,
			[]string{`id: "abc": differs from the id "` + id + `" of the rule it replaces`}},
		{"PUT unknown id", "PUT", "/api/v1/alerts/nosuch", "/api/v1/alerts/{id}", "application/json", []byte(descHighCPU), 404, nil},
		{"GET unknown id", "GET", "/api/v1/alerts/nosuch", "/api/v1/alerts/{id}", "", nil, 404, nil},
		{"DELETE unknown id", "DELETE", "/api/v1/alerts/nosuch", "/api/v1/alerts/{id}", "", nil, 404, nil},
		{"list with a query", "GET", "/api/v1/alerts?x=1", "/api/v1/alerts", "", nil, 400, nil},
		{"history bad start", "GET", "/api/v1/alerts/history?start=yesterday", "/api/v1/alerts/history", "", nil, 400, nil},
		{"history backwards", "GET", "/api/v1/alerts/history?start=2000&end=1000", "/api/v1/alerts/history", "", nil, 400, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var r response
			if len(c.body) > httpd.MaxBodyBytes {
				r = rawRequest(t, ts.srv.Addr().String(), c.method, c.path, c.ct, c.body)
			} else {
				r = ts.do(c.method, c.path, c.ct, c.body)
			}
			if r.status != c.status || !strings.HasPrefix(r.ct, "application/problem+json") {
				t.Fatalf("%d %s %s, want %d", r.status, r.ct, r.body, c.status)
			}
			p := ts.check(c.route, c.method, r)
			if c.errors != nil {
				var got []string
				for _, e := range p["errors"].([]any) {
					got = append(got, e.(string))
				}
				if !slices.Equal(got, c.errors) {
					t.Fatalf("errors\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(c.errors, "\n"))
				}
				if !strings.Contains(p["detail"].(string), c.errors[0]) {
					t.Errorf("detail %q does not give the reason", p["detail"])
				}
			}
		})
	}
	r = ts.do("GET", "/api/v1/alerts", "", nil)
	if list := ts.check("/api/v1/alerts", "GET", r)["rules"].([]any); len(list) != 1 {
		t.Fatalf("bad requests changed the rules: %s", r.body)
	}
	if after := ts.do("GET", "/api/v1/alerts/"+id, "", nil).body; !bytes.Equal(after, before) {
		t.Fatalf("bad requests changed the rule:\n%s\nwas\n%s", after, before)
	}
	filesAfter, _ := os.ReadDir(dir)
	if len(filesAfter) != len(filesBefore) || filesAfter[0].Name() != filesBefore[0].Name() {
		t.Fatalf("bad requests changed the directory: %v", filesAfter)
	}
}

// TestAlertsAuth: reads take the read token, changes the admin token.
func TestAlertsAuth(t *testing.T) {
	const admin, read = "0123456789abcdef0123", "fedcba9876543210fedc"
	dir := t.TempDir()
	rules, _ := alerting.LoadRules(dir, alertCatalog{})
	ts := newTestServerWith(t, func(o *httpd.Options) {
		o.Token, o.ReadToken, o.Alerts, o.AlertState = admin, read, rules, &fakeAlertState{}
	})
	as := func(tok, method, path string, body []byte) int {
		ts.token = tok
		ct := ""
		if body != nil {
			ct = "application/json"
		}
		r := ts.do(method, path, ct, body)
		if r.status >= 400 {
			route := path
			if strings.Count(path, "/") == 4 && !strings.HasSuffix(path, "/active") {
				route = "/api/v1/alerts/{id}"
			}
			ts.check(route, method, r)
		}
		return r.status
	}
	if s := as(admin, "POST", "/api/v1/alerts", []byte(descHighCPU)); s != 201 {
		t.Fatalf("POST with the admin token: %d", s)
	}
	id := rules.List()[0].ID
	for _, c := range []struct {
		tok, method, path string
		body              []byte
		want              int
	}{
		{read, "GET", "/api/v1/alerts", nil, 200},
		{read, "GET", "/api/v1/alerts/" + id, nil, 200},
		{read, "GET", "/api/v1/alerts/active", nil, 200},
		{read, "GET", "/api/v1/alerts/history", nil, 200},
		{read, "POST", "/api/v1/alerts", []byte(descHighCPU), 403},
		{read, "PUT", "/api/v1/alerts/" + id, []byte(descHighCPU), 403},
		{read, "DELETE", "/api/v1/alerts/" + id, nil, 403},
		{"", "GET", "/api/v1/alerts", nil, 401},
		{"", "DELETE", "/api/v1/alerts/" + id, nil, 401},
	} {
		if got := as(c.tok, c.method, c.path, c.body); got != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, got, c.want)
		}
	}
	if l := rules.List(); len(l) != 1 || l[0].ID != id {
		t.Fatalf("refused writes changed the rules: %+v", l)
	}
}

// TestAlertsDisabled: without a rule set or an alert state the endpoints
// answer 503.
func TestAlertsDisabled(t *testing.T) {
	ts := newTestServer(t, "")
	for _, c := range []struct{ method, path, route string }{
		{"GET", "/api/v1/alerts", "/api/v1/alerts"},
		{"POST", "/api/v1/alerts", "/api/v1/alerts"},
		{"GET", "/api/v1/alerts/x", "/api/v1/alerts/{id}"},
		{"PUT", "/api/v1/alerts/x", "/api/v1/alerts/{id}"},
		{"DELETE", "/api/v1/alerts/x", "/api/v1/alerts/{id}"},
		{"GET", "/api/v1/alerts/active", "/api/v1/alerts/active"},
		{"GET", "/api/v1/alerts/history", "/api/v1/alerts/history"},
	} {
		r := ts.do(c.method, c.path, "application/json", []byte(descHighCPU))
		p := ts.check(c.route, c.method, r)
		if r.status != 503 || p["detail"] != "alerting is not enabled" {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.status, r.body)
		}
	}
}

// TestAlertsActiveHistory: the evaluator's alerts as the document says,
// and the history range read from RFC 3339 times or unix seconds.
func TestAlertsActiveHistory(t *testing.T) {
	ts, _, st := newAlertServer(t, "")
	start := time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)
	st.active = []alerting.Alert{
		{Rule: "Potential Port Scan", RuleID: "0123456789abcdef", Severity: "critical", GroupKey: "src_ip=10.0.0.5",
			Labels:      map[string]string{"alertname": "Potential Port Scan", "severity": "critical", "src_ip": "10.0.0.5"},
			Annotations: map[string]string{"description": "Detects potential port scanning activity"},
			Values:      map[string]float64{"network.connection_count": 150, "network.unique_dest_port_count": 40},
			StartsAt:    start, Status: "firing", Fingerprint: "a1b2c3d4e5f60718"},
		{Rule: "High CPU Usage", RuleID: "fedcba9876543210", Severity: "warning", StartsAt: start,
			EndsAt: start.Add(time.Minute), Status: "resolved", Fingerprint: "0000000000000001"},
	}
	r := ts.do("GET", "/api/v1/alerts/active", "", nil)
	as := ts.check("/api/v1/alerts/active", "GET", r)["alerts"].([]any)
	if r.status != 200 || len(as) != 2 {
		t.Fatalf("active: %d %s", r.status, r.body)
	}
	a0, a1 := as[0].(map[string]any), as[1].(map[string]any)
	if a0["group_key"] != "src_ip=10.0.0.5" || a0["starts_at"] != "2026-12-03T14:00:00Z" || a0["ends_at"] != nil ||
		a0["values"].(map[string]any)["network.connection_count"] != 150.0 || a0["labels"].(map[string]any)["src_ip"] != "10.0.0.5" {
		t.Errorf("firing alert: %v", a0)
	}
	if a1["ends_at"] != "2026-12-03T14:01:00Z" || a1["status"] != "resolved" || a1["group_key"] != "" {
		t.Errorf("resolved alert: %v", a1)
	}
	for _, c := range []struct {
		query      string
		start, end time.Time
	}{
		{"?start=2026-12-03T13:00:00Z&end=2026-12-03T15:00:00%2B01:00", start.Add(-time.Hour), start},
		{"?start=1796306400&end=1796310000.5", time.Unix(1796306400, 0), time.Unix(1796310000, 5e8)},
		{"?end=1796310000", time.Unix(1796310000, 0).Add(-24 * time.Hour), time.Unix(1796310000, 0)},
	} {
		r := ts.do("GET", "/api/v1/alerts/history"+c.query, "", nil)
		h := ts.check("/api/v1/alerts/history", "GET", r)
		if r.status != 200 || len(h["alerts"].([]any)) != 2 {
			t.Fatalf("history%s: %d %s", c.query, r.status, r.body)
		}
		st.mu.Lock()
		if !st.start.Equal(c.start) || !st.end.Equal(c.end) {
			t.Errorf("history%s asked %v to %v, want %v to %v", c.query, st.start, st.end, c.start, c.end)
		}
		st.mu.Unlock()
	}
	before := time.Now()
	r = ts.do("GET", "/api/v1/alerts/history", "", nil)
	ts.check("/api/v1/alerts/history", "GET", r)
	st.mu.Lock()
	if st.end.Before(before) || st.end.Sub(st.start) != 24*time.Hour {
		t.Errorf("default history range %v to %v", st.start, st.end)
	}
	st.mu.Unlock()
}

// TestAlertRulesAPIConcurrent: creates and deletes from many clients at
// once; the set and the directory agree at the end.
func TestAlertRulesAPIConcurrent(t *testing.T) {
	ts, dir, _ := newAlertServer(t, "")
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				req, _ := http.NewRequest("POST", ts.base+"/api/v1/alerts", strings.NewReader(descPortScan))
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				var r alerting.Rule
				json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
				if resp.StatusCode != 201 {
					t.Errorf("POST: %d", resp.StatusCode)
					return
				}
				if i%2 == 1 {
					continue
				}
				req, _ = http.NewRequest("DELETE", ts.base+"/api/v1/alerts/"+r.ID, nil)
				resp, err = http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 204 {
					t.Errorf("DELETE: %d", resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	r := ts.do("GET", "/api/v1/alerts", "", nil)
	list := ts.check("/api/v1/alerts", "GET", r)["rules"].([]any)
	files, _ := os.ReadDir(dir)
	if len(list) != 30 || len(files) != 30 {
		t.Fatalf("%d rules, %d files, want 30 of each", len(list), len(files))
	}
	for _, f := range files {
		if strings.HasPrefix(f.Name(), ".") {
			t.Errorf("file %s left", f.Name())
		}
	}
}

// TestAlertRulesAPIWriteFails: a rule that cannot be written is not
// created (500, the set unchanged).
func TestAlertRulesAPIWriteFails(t *testing.T) {
	ts, dir, _ := newAlertServer(t, "")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	r := ts.do("POST", "/api/v1/alerts", "application/json", []byte(descHighCPU))
	p := ts.check("/api/v1/alerts", "POST", r)
	if r.status != 500 || strings.Contains(p["detail"].(string), dir) {
		t.Fatalf("POST into a removed directory: %d %s", r.status, r.body)
	}
	r = ts.do("GET", "/api/v1/alerts", "", nil)
	if list := ts.check("/api/v1/alerts", "GET", r)["rules"].([]any); len(list) != 0 {
		t.Fatalf("a rule that was not written is listed: %s", r.body)
	}
}

// TestAlertRuleSecretRedacted: a rule's webhook secret never leaves the
// sensor through the API; a PUT that sends it back redacted keeps it, one
// that moves it to another URL must send the secret again.
func TestAlertRuleSecretRedacted(t *testing.T) {
	const secret = "rule-hmac-key-4242"
	ts, dir, _ := newAlertServer(t, "")
	body := `{"name":"Hook","metric":"cpu.usage","comparator":"gt","threshold":90,"severity":"warning",
 "notifications":[{"type":"webhook","url":"http://127.0.0.1:9/a","secret":"` + secret + `"},{"type":"webhook","url":"http://127.0.0.1:9/b"}]}`
	r := ts.do("POST", "/api/v1/alerts", "application/json", []byte(body))
	if r.status != 201 {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	got := ts.check("/api/v1/alerts", "POST", r)
	id := got["id"].(string)
	for _, path := range []string{"/api/v1/alerts", "/api/v1/alerts/" + id} {
		r = ts.do("GET", path, "", nil)
		if r.status != 200 || bytes.Contains(r.body, []byte(secret)) || !bytes.Contains(r.body, []byte(`"secret":"\u003credacted\u003e"`)) {
			t.Fatalf("GET %s: %d %s", path, r.status, r.body)
		}
	}
	// The file in the rule directory keeps the secret itself.
	rules, errs := alerting.LoadRules(dir, alertCatalog{})
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	stored, _ := rules.Get(id)
	if stored.Notifications[0].Secret != secret {
		t.Fatalf("stored secret %q", stored.Notifications[0].Secret)
	}
	// PUT back what GET showed, with a new threshold: the secret stays.
	back := strings.Replace(string(ts.do("GET", "/api/v1/alerts/"+id, "", nil).body), `"threshold":90`, `"threshold":80`, 1)
	if r = ts.do("PUT", "/api/v1/alerts/"+id, "application/json", []byte(back)); r.status != 200 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	rules, _ = alerting.LoadRules(dir, alertCatalog{})
	stored, _ = rules.Get(id)
	if stored.Notifications[0].Secret != secret || stored.Conditions[0].Threshold != 80 {
		t.Fatalf("after PUT: %+v", stored)
	}
	// The redacted secret moved to another URL, or in a new rule: 422.
	moved := strings.Replace(back, "9/a", "9/c", 1)
	if r = ts.do("PUT", "/api/v1/alerts/"+id, "application/json", []byte(moved)); r.status != 422 {
		t.Fatalf("PUT with a redacted secret on a new URL: %d %s", r.status, r.body)
	}
	if r = ts.do("POST", "/api/v1/alerts", "application/json", []byte(strings.Replace(body, secret, httpd.Redacted, 1))); r.status != 422 {
		t.Fatalf("POST with a redacted secret: %d %s", r.status, r.body)
	}
}
