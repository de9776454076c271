package httpd_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netsentry/netsentry/configs"
	"github.com/netsentry/netsentry/geo"
	"github.com/netsentry/netsentry/geo/geotest"
	"github.com/netsentry/netsentry/httpd"
)

// strs returns v, a JSON array of strings, as a []string.
func strs(t *testing.T, v any) []string {
	t.Helper()
	a, ok := v.([]any)
	if !ok {
		t.Fatalf("%v is not an array", v)
	}
	var out []string
	for _, e := range a {
		out = append(out, e.(string))
	}
	return out
}

// PUT lists every problem of the body at once: an unknown key no longer
// hides the bad values beside it, nor the settings that are not built.
func TestPutListsEveryProblem(t *testing.T) {
	ts := newTestServer(t, "")
	body := `{"log_level": "loud", "api_prot": 8080, "api_port": -1,
 "storage": {"type": "influxdb", "remote_url": "http://influxdb:8086"},
 "alerts": {"notification_channels": [{"type": "webhook", "url": "https://hooks.example.com/x"}]},
 "performance": {"use_zero_copy": false, "enable_lock_free_queues": false, "threads": "four"},
 "network_analysis": {"enable_geolocation": true, "geoip_db": "/nonexistent/GeoLite2-City.mmdb", "asn_db": "", "protocols": ["smb"]}}`
	r := ts.do("PUT", "/api/v1/config", "application/json", []byte(body))
	p := ts.check("/api/v1/config", "PUT", r)
	if r.status != 400 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	want := []string{
		`request body:1: unknown key "api_prot"; did you mean "api_port"?`,
		`request body:4: performance.threads: want an integer, got "four"`,
		`request body:1: log_level: "loud" is not one of debug, info, warn, error`,
		`request body:1: api_port: -1 is not a TCP port; use 1 to 65535`,
		`request body: storage.influx_database: empty, and so is influx_bucket; set influx_database for InfluxDB 1.x, or influx_org and influx_bucket for 2.x`,
		`request body:4: performance.use_zero_copy: false is not supported: the capture always reads packets in place from a memory-mapped TPACKET_V3 ring; remove the key or set it to true`,
		`request body:4: performance.enable_lock_free_queues: false is not supported: the packet path takes no lock (each worker owns its ring and flow-table shard, and live capture never waits on the flow writers); remove the key or set it to true`,
		`request body: network_analysis.geoip_db: cannot read "/nonexistent/GeoLite2-City.mmdb" as a MaxMind database: open /nonexistent/GeoLite2-City.mmdb: no such file or directory`,
	}
	if got := strs(t, p["errors"]); !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if ws := strs(t, p["warnings"]); len(ws) != 1 || !strings.Contains(ws[0], "network_analysis.protocols[0]: ") || !strings.Contains(ws[0], configs.NotActedOn) {
		t.Errorf("warnings: %q", ws)
	}
	if ts.config.replaced != 0 {
		t.Errorf("a bad PUT replaced the config")
	}
}

// A good PUT says which settings are accepted but not acted on, and which
// changed keys those are.
func TestPutWarnings(t *testing.T) {
	ts := newTestServer(t, "")
	cfg := ts.check("/api/v1/config", "GET", ts.do("GET", "/api/v1/config", "", nil))
	cfg["network_analysis"].(map[string]any)["protocols"] = []string{"dns", "smb"}
	body, _ := json.Marshal(cfg)
	r := ts.do("PUT", "/api/v1/config", "application/json", body)
	res := ts.check("/api/v1/config", "PUT", r)
	if r.status != 200 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	want := []string{
		`request body:1: network_analysis.protocols[1]: "smb" is accepted, not yet acted on: there is no SMB detector yet, so SMB flows are named by their port guess only`,
	}
	if got := strs(t, res["warnings"]); !slices.Equal(got, want) {
		t.Errorf("warnings:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := strs(t, res["not_acted_on"]); len(got) != 0 {
		t.Errorf("not_acted_on %v from a store that reports none", got)
	}
}

// geoServer is a test server whose API has geolocation from databases the
// test wrote: the capture's server, 192.150.187.43 (bro.org), and its
// client 10.0.2.15, with made-up places.
func geoServer(t *testing.T) (*testServer, map[string]geo.Info) {
	dir := t.TempDir()
	city, asn := filepath.Join(dir, "city.mmdb"), filepath.Join(dir, "asn.mmdb")
	want := map[string]geo.Info{
		"192.150.187.43": {Country: "US", City: "Berkeley", ASN: 715, ASOrg: "ICSI Test Net"},
		"10.0.2.15":      {Country: "DE", City: "Berlin", ASN: 64512, ASOrg: "Private Test AS"},
	}
	geotest.WriteCity(t, city, []geotest.Network{
		{Prefix: "192.150.187.0/24", Info: geo.Info{Country: "US", City: "Berkeley"}},
		{Prefix: "10.0.2.0/24", Info: geo.Info{Country: "DE", City: "Berlin"}}})
	geotest.WriteASN(t, asn, []geotest.Network{
		{Prefix: "192.150.0.0/16", Info: geo.Info{ASN: 715, ASOrg: "ICSI Test Net"}},
		{Prefix: "10.0.0.0/8", Info: geo.Info{ASN: 64512, ASOrg: "Private Test AS"}}})
	db, err := geo.Open(city, asn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	snap := replayState(t, "zeek-http-bro.org.pcap")
	sensor := &fakeSensor{snap: snap, running: true, ifaces: []string{"eth0"}}
	cfg := &fakeConfig{cfg: configs.Default()}
	srv, err := httpd.New(httpd.Options{Listen: "127.0.0.1:0", Version: "test", GoVersion: "go-test",
		Sensor: sensor, Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Geo: db})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(time.Second) })
	return &testServer{t: t, srv: srv, base: "http://" + srv.Addr().String(), sensor: sensor, config: cfg,
		api: loadOpenAPI(t)}, want
}

func geoMap(i geo.Info) map[string]any {
	return map[string]any{"country": i.Country, "city": i.City, "asn": float64(i.ASN), "as_org": i.ASOrg}
}

// Connections and hosts carry where their addresses are: what the test
// wrote into the databases for the capture's two addresses (tshark's
// endpoint table lists exactly these two).
func TestGeoEndpoints(t *testing.T) {
	ts, want := geoServer(t)
	eps := readTSV(t, filepath.Join(corpus, "oracle/zeek-http-bro.org.pcap.endpoints_exact.tsv"))
	for _, e := range eps {
		if _, ok := want[e["address"]]; !ok {
			t.Fatalf("tshark lists %s, which the test database does not hold", e["address"])
		}
	}
	r := ts.do("GET", "/api/v1/network/connections?limit=100", "", nil)
	conns := ts.check("/api/v1/network/connections", "GET", r)["connections"].([]any)
	if len(conns) == 0 {
		t.Fatal("no connections")
	}
	for _, c := range conns {
		c := c.(map[string]any)
		for _, side := range []string{"source", "dest"} {
			if got, w := c[side+"_geo"], geoMap(want[c[side+"_ip"].(string)]); !reflect.DeepEqual(got, w) {
				t.Errorf("connection %v:%v: %s_geo = %v, want %v", c["source_ip"], c["source_port"], side, got, w)
			}
		}
	}
	r = ts.do("GET", "/api/v1/network/hosts?limit=10", "", nil)
	hosts := ts.check("/api/v1/network/hosts", "GET", r)["hosts"].([]any)
	if len(hosts) != len(eps) {
		t.Fatalf("%d hosts, tshark %d", len(hosts), len(eps))
	}
	for _, h := range hosts {
		h := h.(map[string]any)
		if got, w := h["geo"], geoMap(want[h["ip"].(string)]); !reflect.DeepEqual(got, w) {
			t.Errorf("host %v: geo = %v, want %v", h["ip"], got, w)
		}
	}

	// Without geolocation, no geo fields at all.
	plain := newTestServer(t, "")
	r = plain.do("GET", "/api/v1/network/connections?limit=1", "", nil)
	if strings.Contains(string(r.body), "_geo") {
		t.Errorf("geo fields without geolocation: %s", r.body)
	}
}

// A damaged database in a PUT is an error naming the key and the file.
func TestPutCorruptGeoDB(t *testing.T) {
	ts := newTestServer(t, "")
	bad := filepath.Join(t.TempDir(), "asn.mmdb")
	if err := os.WriteFile(bad, []byte(strings.Repeat("garbage ", 64)), 0o600); err != nil {
		t.Fatal(err)
	}
	city := filepath.Join(t.TempDir(), "city.mmdb")
	geotest.WriteCity(t, city, []geotest.Network{{Prefix: "192.0.2.0/24", Info: geo.Info{Country: "FR"}}})
	body := fmt.Sprintf(`{"network_analysis": {"enable_geolocation": true, "geoip_db": %q, "asn_db": %q}}`, city, bad)
	r := ts.do("PUT", "/api/v1/config", "application/json", []byte(body))
	p := ts.check("/api/v1/config", "PUT", r)
	errs := strs(t, p["errors"])
	if r.status != 400 || len(errs) != 1 || !strings.HasPrefix(errs[0], fmt.Sprintf("request body: network_analysis.asn_db: cannot read %q as a MaxMind database: ", bad)) {
		t.Errorf("PUT with a corrupt asn_db: %d %q", r.status, errs)
	}
	// Both good: accepted.
	body = fmt.Sprintf(`{"network_analysis": {"enable_geolocation": true, "geoip_db": %q, "asn_db": ""}}`, city)
	if r := ts.do("PUT", "/api/v1/config", "application/json", []byte(body)); r.status != 200 {
		t.Errorf("PUT with a good geoip_db: %d %s", r.status, r.body)
	}
}
