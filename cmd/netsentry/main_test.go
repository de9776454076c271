package main

import (
	"bufio"
	"bytes"
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

	"github.com/netsentry/netsentry/configs"
	"github.com/netsentry/netsentry/geo"
	"github.com/netsentry/netsentry/geo/geotest"
	"github.com/netsentry/netsentry/internal/testcorpus"
)

// The warnings every configuration that keeps the default sections gets:
// none, every default key is acted on.
var defaultWarnings []string

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func checkConfig(t *testing.T, args ...string) (int, []string) {
	t.Helper()
	var out, errOut bytes.Buffer
	rc := run(append([]string{"--check-config"}, args...), &out, &errOut)
	if errOut.Len() > 0 {
		t.Errorf("--check-config wrote to stderr: %s", errOut.String())
	}
	return rc, strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
}

func prefixed(prefix string, lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = prefix + l
	}
	return out
}

func TestCheckConfigDefault(t *testing.T) {
	rc, lines := checkConfig(t)
	want := append(prefixed("warning: ", defaultWarnings), "ok")
	if rc != 0 || !slices.Equal(lines, want) {
		t.Errorf("--check-config: exit %d\n%s\nwant exit 0\n%s", rc, strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// The product description's example loads, with warnings for what is not
// built.
func TestCheckConfigDescriptionExample(t *testing.T) {
	path := writeFile(t, "example.yaml", `# Example configuration
log_level: "info"
enable_api: true
api_port: 8080
enable_web: true
web_port: 9090
enable_packet_capture: true
capture_interface: "eth0"
`)
	rc, lines := checkConfig(t, "--config", path)
	want := []string{"ok"}
	if rc != 0 || !slices.Equal(lines, want) {
		t.Errorf("--check-config: exit %d\n%s\nwant exit 0\n%s", rc, strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// Every problem is listed at once: unknown keys, bad values, unbuilt
// features, and geolocation databases that are missing or damaged.
func TestCheckConfigListsEverything(t *testing.T) {
	corrupt := writeFile(t, "asn.mmdb", strings.Repeat("not a database ", 50))
	missing := filepath.Join(t.TempDir(), "GeoLite2-City.mmdb")
	path := writeFile(t, "site.yaml", fmt.Sprintf(`enable_web: false
storage:
  type: influxdb
  retention_dayz: 3
network_analysis:
  enable_geolocation: true
  geoip_db: %q
  asn_db: %q
alerts:
  notification_channels:
    - type: email
      recipients: [admin@example.com]
performance:
  use_zero_copy: false
`, missing, corrupt))
	rc, lines := checkConfig(t, "--config", path)
	want := []string{
		path + `:4: unknown key "storage.retention_dayz"; did you mean "retention_days"?`,
		path + `: storage.remote_url: empty, but storage.type is influxdb; set the backend's URL, e.g. http://influxdb:8086`,
		path + `: storage.influx_database: empty, and so is influx_bucket; set influx_database for InfluxDB 1.x, or influx_org and influx_bucket for 2.x`,
		path + `:11: alerts.notification_channels[0]: an email channel needs a mail server: set alerts.smtp.host (and alerts.smtp.from)`,
		path + `:14: performance.use_zero_copy: false is not supported: the capture always reads packets in place from a memory-mapped TPACKET_V3 ring; remove the key or set it to true`,
		path + fmt.Sprintf(`: network_analysis.geoip_db: cannot read %q as a MaxMind database: open %s: no such file or directory`, missing, missing),
	}
	if rc != 1 || len(lines) < len(want)+1 || !slices.Equal(lines[:len(want)], want) {
		t.Fatalf("--check-config: exit %d\n%s\nwant exit 1 and\n%s", rc, strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	asn := lines[len(want)]
	if !strings.HasPrefix(asn, path+fmt.Sprintf(": network_analysis.asn_db: cannot read %q as a MaxMind database: ", corrupt)) {
		t.Errorf("asn_db problem: %s", asn)
	}
	if ws := lines[len(want)+1:]; len(ws) != 0 {
		t.Errorf("warnings:\n%s", strings.Join(ws, "\n"))
	}
}

// writeGeoDBs writes City and ASN databases holding the two addresses of
// zeek-http-bro.org.pcap (as tshark's endpoint table lists them) and
// returns their paths and what they say of each address.
func writeGeoDBs(t *testing.T) (city, asn string, want map[string]geo.Info) {
	dir := t.TempDir()
	city, asn = filepath.Join(dir, "city.mmdb"), filepath.Join(dir, "asn.mmdb")
	want = map[string]geo.Info{
		"192.150.187.43": {Country: "US", City: "Berkeley", ASN: 715, ASOrg: "ICSI Test Net"},
		"10.0.2.15":      {Country: "DE", City: "Berlin", ASN: 64512, ASOrg: "Private Test AS"},
	}
	var cities, asns []geotest.Network
	for ip, i := range want {
		cities = append(cities, geotest.Network{Prefix: ip + "/32", Info: geo.Info{Country: i.Country, City: i.City}})
		asns = append(asns, geotest.Network{Prefix: ip + "/32", Info: geo.Info{ASN: i.ASN, ASOrg: i.ASOrg}})
	}
	geotest.WriteCity(t, city, cities)
	geotest.WriteASN(t, asn, asns)
	eps := testcorpus.Path(t, "oracle/zeek-http-bro.org.pcap.endpoints_exact.tsv")
	data, err := os.ReadFile(eps)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n")[1:] {
		seen = append(seen, strings.Split(l, "\t")[1])
	}
	slices.Sort(seen)
	if !slices.Equal(seen, []string{"10.0.2.15", "192.150.187.43"}) {
		t.Fatalf("tshark's endpoints of the capture are %v", seen)
	}
	return city, asn, want
}

// A replay with enable_geolocation writes each record's endpoints' country,
// city and AS as the test database holds them, and the summary shows them
// for the top hosts.
func TestReplayGeolocation(t *testing.T) {
	city, asn, want := writeGeoDBs(t)
	cfg := writeFile(t, "geo.yaml", fmt.Sprintf("network_analysis:\n  enable_geolocation: true\n  geoip_db: %q\n  asn_db: %q\n", city, asn))
	out := filepath.Join(t.TempDir(), "flows.jsonl")
	var stdout, stderr bytes.Buffer
	pcap := testcorpus.Path(t, "zeek-http-bro.org.pcap")
	if rc := run([]string{"--config", cfg, "--replay", pcap, "--flows-out", out}, &stdout, &stderr); rc != 0 {
		t.Fatalf("replay: exit %d: %s", rc, stderr.String())
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("record %d: %v", n, err)
		}
		n++
		for _, side := range []string{"source", "dest"} {
			i := want[rec[side+"_ip"].(string)]
			w := map[string]any{"country": i.Country, "city": i.City, "asn": float64(i.ASN), "as_org": i.ASOrg}
			if got := rec[side+"_geo"]; !reflect.DeepEqual(got, w) {
				t.Errorf("record %d (%v:%v): %s_geo = %v, want %v", n, rec["source_ip"], rec["source_port"], side, got, w)
			}
		}
	}
	if n == 0 {
		t.Fatal("no flow records")
	}
	// tshark: 192.150.187.43 has 494493 bytes, 10.0.2.15 the same.
	for _, line := range []string{
		"192.150.187.43: 494493 bytes (US Berkeley, AS715 ICSI Test Net)",
		"10.0.2.15: 494493 bytes (DE Berlin, AS64512 Private Test AS)",
	} {
		if !strings.Contains(stdout.String(), line) {
			t.Errorf("summary has no line %q:\n%s", line, stdout.String())
		}
	}
	// The start-up log says what is accepted but not acted on.
	for _, w := range defaultWarnings {
		if !strings.Contains(stderr.String(), "config: "+cfg+": "+w) {
			t.Errorf("stderr lacks warning %q:\n%s", w, stderr.String())
		}
	}

	// Without geolocation the records have no geo fields.
	plain := filepath.Join(t.TempDir(), "plain.jsonl")
	if rc := run([]string{"--replay", pcap, "--flows-out", plain}, io.Discard, io.Discard); rc != 0 {
		t.Fatalf("replay: exit %d", rc)
	}
	if data, err := os.ReadFile(plain); err != nil || bytes.Contains(data, []byte("_geo")) {
		t.Errorf("geo fields without geolocation (%v)", err)
	}
}

// A replay whose geolocation database is missing does not start.
func TestReplayMissingGeoDB(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "city.mmdb")
	cfg := writeFile(t, "geo.yaml", fmt.Sprintf("network_analysis:\n  enable_geolocation: true\n  geoip_db: %q\n  asn_db: \"\"\n", missing))
	var stderr bytes.Buffer
	rc := run([]string{"--config", cfg, "--replay", testcorpus.Path(t, "zeek-http-bro.org.pcap")}, io.Discard, &stderr)
	if rc != 2 || !strings.Contains(stderr.String(), fmt.Sprintf("network_analysis.geoip_db: cannot read %q", missing)) {
		t.Errorf("exit %d: %s", rc, stderr.String())
	}
}

// A configuration change to a key that is not acted on (storage.remote_url
// with storage.type local, which sends nothing) is reported as such, not as
// waiting for a restart; a storage key and web_port (the dashboard listens
// from the start) wait for one.
func TestApplyNotActedOn(t *testing.T) {
	d := &daemon{cfg: configs.Default(), level: new(slog.LevelVar), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	c := configs.Default()
	c.Storage.RetentionDays = 7
	c.WebPort = 9191
	c.APIPort = 8181
	c.LogLevel = "debug"
	c.Storage.RemoteURL = "http://vm:8428"
	res := d.applyLocked(c)
	if !slices.Equal(res.NotActedOn, []string{"storage.remote_url"}) ||
		!slices.Equal(res.RestartRequired, []string{"api_port", "storage.retention_days", "web_port"}) || !slices.Equal(res.Applied, []string{"log_level"}) {
		t.Errorf("applyLocked: %+v", res)
	}
}

// The default configuration has no key that is not acted on (enable_web
// was the last one), so a run logs no such warning.
func TestDefaultConfigWarnsOfNothing(t *testing.T) {
	var stderr bytes.Buffer
	if rc := run([]string{"--replay", testcorpus.Path(t, "zeek-http-bro.org.pcap")}, io.Discard, &stderr); rc != 0 {
		t.Fatalf("exit %d: %s", rc, stderr.String())
	}
	if strings.Contains(stderr.String(), "enable_web") || strings.Contains(stderr.String(), configs.NotActedOn) {
		t.Errorf("stderr:\n%s", stderr.String())
	}
}

// The alerts section is read at start-up: a change to it waits for a
// restart (rules themselves change live over /api/v1/alerts).
func TestApplyAlertsNeedsRestart(t *testing.T) {
	d := &daemon{cfg: configs.Default(), level: new(slog.LevelVar), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	c := configs.Default()
	c.Alerts.ConfigPath = "/tmp/rules"
	c.Alerts.SMTP.Host = "mail.example.com"
	res := d.applyLocked(c)
	if len(res.NotActedOn) != 0 || len(res.Applied) != 0 || len(res.RestartRequired) != 2 ||
		!strings.HasPrefix(res.RestartRequired[0], "alerts.") || !strings.HasPrefix(res.RestartRequired[1], "alerts.") {
		t.Errorf("applyLocked: %+v, want both alerts keys waiting for a restart", res)
	}
}

// TestEnvTokens: NETSENTRY_API_TOKEN makes a configuration that listens
// beyond loopback valid, as the Kubernetes manifests use it.
func TestEnvTokens(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfg, []byte("api_listen: 0.0.0.0\n"), 0o644)
	var out strings.Builder
	if rc := run([]string{"--check-config", "--config", cfg}, &out, io.Discard); rc != 1 || !strings.Contains(out.String(), "api_token") {
		t.Fatalf("without the variable: exit %d: %s", rc, out.String())
	}
	t.Setenv(envAPIToken, "0123456789abcdef0123")
	out.Reset()
	if rc := run([]string{"--check-config", "--config", cfg}, &out, io.Discard); rc != 0 {
		t.Fatalf("with %s: exit %d: %s", envAPIToken, rc, out.String())
	}
}
