package configs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// keysOf returns the keys of ps, in order.
func keysOf(ps []Problem) []string {
	var ks []string
	for _, p := range ps {
		ks = append(ks, p.Key)
	}
	return ks
}

func TestWarnings(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(c *Config)
		want   []string // keys warned about
	}{
		{"default", func(c *Config) {}, nil},
		{"web off", func(c *Config) { c.EnableWeb = false }, nil},
		{"remote url", func(c *Config) { c.Storage.RemoteURL = "http://vm:8428" }, []string{"storage.remote_url"}},
		{"smb", func(c *Config) { c.NetworkAnalysis.Protocols = []string{"dns", "smb"} },
			[]string{"network_analysis.protocols[1]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.change(&c)
			ws := c.Warnings()
			if got := keysOf(ws); !slices.Equal(got, tc.want) {
				t.Fatalf("warned about %v, want %v", got, tc.want)
			}
			for _, w := range ws {
				if !strings.HasPrefix(w.Msg, w.Key+": ") || !strings.Contains(w.Msg, NotActedOn) {
					t.Errorf("warning %q: want it to start with its key and say %q", w.Msg, NotActedOn)
				}
			}
		})
	}
}

func TestInert(t *testing.T) {
	for key, want := range map[string]bool{
		"enable_web": false, "web_port": false, "storage.remote_url": false,
		"storage": false, "storage.type": false, "storage.retention_days": false, "storage.local_path": false,
		"storage.max_disk_mb": false, "storage.interval": false,
		"alerts": false, "alerts.notification_channels": false, "alerts.config_path": false, "alerts.smtp.host": false,
		"enable_api": false, "api_port": false, "storagex": false, "network_analysis.protocols": false,
		"performance.use_zero_copy": false, "log_level": false,
	} {
		if got := Inert(key); got != want {
			t.Errorf("Inert(%q) = %v, want %v", key, got, want)
		}
	}
}

// The product description's example configurations, with the indentation
// that its text lost restored.
const (
	descriptionExample = `# Example configuration
log_level: "info"
enable_api: true
api_port: 8080
enable_web: true
web_port: 9090
enable_packet_capture: true
capture_interface: "eth0"
`
	descriptionAdvanced = `# Storage configuration
storage:
  type: "prometheus" # Options: prometheus, influxdb, local
  retention_days: 30
  local_path: "/var/lib/netsentry/data"
  remote_url: "http://prometheus:9090"
# Network analysis configuration
network_analysis:
  capture_interfaces: ["eth0", "eth1"]
  bpf_filter: "not port 22"
  capture_snaplen: 96
  enable_protocol_detection: true
  enable_geolocation: true
  protocols:
    - http
    - dns
    - tls
    - smtp
# Alert configuration
alerts:
  config_path: "/etc/netsentry/alerts/"
  notification_channels:
    - type: "email"
      recipients: ["admin@example.com"]
    - type: "webhook"
      url: "https://hooks.slack.com/services/XXX/YYY/ZZZ"
    - type: "prometheus-alertmanager"
      url: "http://alertmanager:9093/api/v1/alerts"
# Performance tuning
performance:
  threads: 4 # 0 = auto-detect
  packet_batch_size: 1024
  use_zero_copy: true
  memory_limit_mb: 2048
  enable_lock_free_queues: true
`
)

func TestDescriptionExampleLoadsWithWarnings(t *testing.T) {
	c, ws, err := Check([]byte(descriptionExample), "example.yaml", nil)
	if err != nil {
		t.Fatalf("the description's example configuration does not load: %v", err)
	}
	if c.WebPort != 9090 || !c.EnableWeb {
		t.Errorf("web_port %d enable_web %v", c.WebPort, c.EnableWeb)
	}
	if len(ws) != 0 {
		t.Errorf("warnings:\n%s\nwant none (the dashboard is built)", &Errors{ws})
	}
}

// The advanced example asks for a remote store (Prometheus remote write)
// and for an email channel without naming a mail server: only the channel
// is an error; the remote store is accepted as written.
func TestDescriptionAdvancedNamesWhatIsNotBuilt(t *testing.T) {
	_, ws, err := Check([]byte(descriptionAdvanced), "advanced.yaml", nil)
	want := []string{
		`advanced.yaml:23: alerts.notification_channels[0]: an email channel needs a mail server: set alerts.smtp.host (and alerts.smtp.from)`,
	}
	problems(t, err)
	if err.Error() != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant\n%s", err, strings.Join(want, "\n"))
	}
	if got := keysOf(ws); len(got) != 0 {
		t.Errorf("warned about %v", got)
	}
	// With type local, the remote URL is named as not acted on.
	local := strings.Replace(descriptionAdvanced, `type: "prometheus"`, `type: "local"`, 1)
	_, ws, _ = Check([]byte(local), "advanced.yaml", nil)
	if got := keysOf(ws); !slices.Equal(got, []string{"storage.remote_url"}) {
		t.Fatalf("warned about %v", got)
	}
	if ws[0].Line != 6 {
		t.Errorf("warning line %d; want 6 (remote_url:)", ws[0].Line)
	}

	// With a local store and a mail server, it loads, with warnings.
	fixed := strings.Replace(descriptionAdvanced, `type: "prometheus"`, `type: "local"`, 1)
	fixed = strings.Replace(fixed, "  notification_channels:", "  smtp: {host: mail.example.com, from: netsentry@example.com}\n  notification_channels:", 1)
	c, _, err := Check([]byte(fixed), "advanced.yaml", nil)
	if err != nil {
		t.Fatalf("advanced example without remote store and channels: %v", err)
	}
	if !c.NetworkAnalysis.EnableGeolocation || c.Performance.Threads != 4 || c.NetworkAnalysis.CaptureSnaplen != 96 {
		t.Errorf("advanced example decoded as %+v", c)
	}
}

// Check lists every problem of a file at once: an unknown key does not
// hide the bad values beside it, nor the settings that are not built.
func TestCheckListsEverything(t *testing.T) {
	in := `log_level: loud
api_prot: 8080
storage:
  type: influxdb
  retention_days: 0
performance:
  use_zero_copy: false
  enable_lock_free_queues: false
  threads: lots
`
	_, _, err := Check([]byte(in), "body", nil)
	want := []string{
		`body:2: unknown key "api_prot"; did you mean "api_port"?`,
		`body:9: performance.threads: want an integer, got "lots"`,
		`body:1: log_level: "loud" is not one of debug, info, warn, error`,
		`body:5: storage.retention_days: 0; keep data for at least 1 day`,
		`body: storage.remote_url: empty, but storage.type is influxdb; set the backend's URL, e.g. http://influxdb:8086`,
		`body: storage.influx_database: empty, and so is influx_bucket; set influx_database for InfluxDB 1.x, or influx_org and influx_bucket for 2.x`,
		`body:7: performance.use_zero_copy: false is not supported: the capture always reads packets in place from a memory-mapped TPACKET_V3 ring; remove the key or set it to true`,
		`body:8: performance.enable_lock_free_queues: false is not supported: the packet path takes no lock (each worker owns its ring and flow-table shard, and live capture never waits on the flow writers); remove the key or set it to true`,
	}
	problems(t, err)
	if err.Error() != strings.Join(want, "\n") {
		t.Errorf("Check:\n%s\nwant\n%s", err, strings.Join(want, "\n"))
	}

	// adjust runs before Validate.
	_, _, err = Check([]byte("api_token: short\n"), "body", func(c *Config) { c.APIToken = "0123456789abcdef0123" })
	if err != nil {
		t.Errorf("Check with adjust: %v", err)
	}
}

func TestCheckFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "site.yaml")
	if err := os.WriteFile(path, []byte("enable_web: false\nstorage:\n  retention_days: 3\n  remote_url: http://vm:8428\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, ws, err := CheckFile(path)
	if err != nil || c.Storage.RetentionDays != 3 {
		t.Fatalf("CheckFile: %+v, %v", c.Storage, err)
	}
	if len(ws) != 1 || ws[0].String() != path+":4: "+ws[0].Msg || ws[0].Key != "storage.remote_url" {
		t.Errorf("warnings %v", &Errors{ws})
	}
}

// FuzzCheck: whatever the bytes, Check lists problems as *Errors with the
// file named, warnings that say what is not acted on, and a Config it
// returns without error validates.
func FuzzCheck(f *testing.F) {
	f.Add(DefaultYAML)
	f.Add([]byte(descriptionExample))
	f.Add([]byte(descriptionAdvanced))
	f.Add([]byte("api_prot: 1\nstorage: {type: influxdb}\nperformance: {use_zero_copy: false}\n"))
	f.Add([]byte("network_analysis: {protocols: [smb, smb], enable_geolocation: true, geoip_db: ''}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, ws, err := Check(data, "fuzz.yaml", nil)
		for _, w := range ws {
			if w.Key == "" || w.File != "fuzz.yaml" || !strings.HasPrefix(w.Msg, w.Key+": ") || !strings.Contains(w.Msg, NotActedOn) {
				t.Fatalf("malformed warning %+v", w)
			}
		}
		if err != nil {
			for _, p := range problems(t, err) {
				if p.File != "fuzz.yaml" || p.Msg == "" {
					t.Fatalf("malformed problem %+v", p)
				}
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Check accepted a config that does not validate: %v", err)
		}
	})
}
