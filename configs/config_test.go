package configs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// problems returns the problems in err, failing the test if err is not an
// *Errors.
func problems(t *testing.T, err error) []Problem {
	t.Helper()
	if err == nil {
		t.Fatal("got no error, want problems")
	}
	var e *Errors
	if !errors.As(err, &e) {
		t.Fatalf("error is %T, want *Errors: %v", err, err)
	}
	if len(e.Problems) == 0 {
		t.Fatal("*Errors with no problems")
	}
	return e.Problems
}

// channelRE matches the key of a whole notification channel.
var channelRE = regexp.MustCompile(`^alerts\.notification_channels\[\d+\]$`)

func secs(n int) Duration { return Duration{time.Duration(n) * time.Second} }

// The defaults the product description and the design brief ask for,
// written out independently of netsentry.yaml.
var wantDefault = Config{
	LogLevel:            "info",
	EnableAPI:           true,
	APIListen:           "127.0.0.1",
	APIPort:             8080,
	APIToken:            "",
	APIReadToken:        "",
	EnableWeb:           true,
	WebPort:             9090,
	EnablePacketCapture: true,
	CaptureInterface:    "eth0",
	Storage: Storage{
		Type:          "local",
		RetentionDays: 30,
		LocalPath:     "/var/lib/netsentry/data",
		RemoteURL:     "",
		MaxDiskMB:     1024,
		Interval:      Duration{5 * time.Second},
		Local:         true,
		RemoteQueueMB: 256,
	},
	NetworkAnalysis: NetworkAnalysis{
		CaptureInterfaces:       nil,
		BPFFilter:               "",
		CaptureSnaplen:          65535,
		EnableProtocolDetection: true,
		EnableGeolocation:       false,
		GeoIPDB:                 "/var/lib/GeoIP/GeoLite2-City.mmdb",
		ASNDB:                   "/var/lib/GeoIP/GeoLite2-ASN.mmdb",
		Protocols: []string{"http", "http2", "dns", "mdns", "llmnr", "tls", "smtp", "ssh", "quic",
			"ftp", "dhcp", "dhcpv6", "ntp", "ssdp", "pop3", "imap"},
	},
	Alerts: Alerts{
		ConfigPath:           "/etc/netsentry/alerts/",
		NotificationChannels: nil,
		SMTP:                 SMTP{Port: 587, TLS: "mandatory"},
	},
	Performance: Performance{
		Threads:              0,
		PacketBatchSize:      1024,
		UseZeroCopy:          true,
		MemoryLimitMB:        2048,
		RingSizeMB:           32,
		BlockTimeoutMs:       20,
		EnableLockFreeQueues: true,
	},
	Flows: Flows{
		IdleTimeout:     secs(120),
		UDPIdleTimeout:  secs(60),
		ActiveTimeout:   secs(1800),
		TCPClosedLinger: secs(5),
		FragmentTimeout: secs(30),
		MaxFragments:    8192,
	},
}

func TestDefault(t *testing.T) {
	got := Default()
	if !reflect.DeepEqual(got, wantDefault) {
		t.Errorf("Default() =\n%+v\nwant\n%+v", got, wantDefault)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("default configuration does not validate:\n%v", err)
	}
	parsed, err := Parse(DefaultYAML, "netsentry.yaml")
	if err != nil {
		t.Fatalf("Parse(DefaultYAML): %v", err)
	}
	if !reflect.DeepEqual(parsed, wantDefault) {
		t.Errorf("Parse(DefaultYAML) =\n%+v\nwant\n%+v", parsed, wantDefault)
	}
	// Default hands out a fresh value each time.
	a := Default()
	a.NetworkAnalysis.Protocols[0] = "changed"
	if b := Default(); b.NetworkAnalysis.Protocols[0] != "http" {
		t.Errorf("changing one Default() changed the next: %v", b.NetworkAnalysis.Protocols)
	}
}

func TestEmptyFileIsDefault(t *testing.T) {
	for _, in := range []string{"", "\n\n", "# only a comment\n", "~\n", "---\n", "--- ~\n...\n"} {
		c, err := Parse([]byte(in), "empty.yaml")
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		if !reflect.DeepEqual(c, wantDefault) {
			t.Errorf("Parse(%q) is not the default configuration: %+v", in, c)
		}
	}
}

// yamlKeys walks a YAML node tree and returns the dotted path of every
// mapping key with its node; list elements show as "[]". Keys inside a
// commented-out example (a head comment with "Example:") count too, so that
// the keys of an empty-by-default list are documented.
func yamlKeys(t *testing.T, n *yaml.Node, parent string, out map[string]*yaml.Node) {
	t.Helper()
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			yamlKeys(t, c, parent, out)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			yamlKeys(t, c, parent+"[]", out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			path := k.Value
			if parent != "" {
				path = parent + "." + k.Value
			}
			out[path] = k
			yamlKeys(t, n.Content[i+1], path, out)
			if ex := commentedExample(k.HeadComment); ex != "" {
				var doc yaml.Node
				if err := yaml.Unmarshal([]byte(ex), &doc); err != nil {
					t.Fatalf("example above %q is not YAML: %v\n%s", path, err, ex)
				}
				exKeys := map[string]*yaml.Node{}
				yamlKeys(t, &doc, parent, exKeys)
				for p, node := range exKeys {
					if _, ok := out[p]; !ok {
						out[p] = node
					}
				}
			}
		}
	}
}

// commentedExample returns the YAML after "Example:" in a comment block,
// with the comment marks and common indentation removed.
func commentedExample(comment string) string {
	_, after, ok := strings.Cut(comment, "Example:")
	if !ok {
		return ""
	}
	var lines []string
	for _, l := range strings.Split(after, "\n") {
		l = strings.TrimSpace(l)
		l = strings.TrimPrefix(l, "#")
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	indent := -1
	for _, l := range lines {
		n := len(l) - len(strings.TrimLeft(l, " "))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	for i := range lines {
		lines[i] = lines[i][indent:]
	}
	return strings.Join(lines, "\n") + "\n"
}

// structKeys returns the dotted key path of every field of t, from its yaml
// tags; list elements show as "[]".
func structKeys(t reflect.Type, parent string, out map[string]bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			panic("field " + f.Name + " has no yaml key")
		}
		path := name
		if parent != "" {
			path = parent + "." + name
		}
		out[path] = true
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			ft, path = ft.Elem(), path+"[]"
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[Duration]() {
			structKeys(ft, path, out)
		}
	}
}

func TestEveryKeyInYAMLAndStruct(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal(DefaultYAML, &doc); err != nil {
		t.Fatal(err)
	}
	inYAML := map[string]*yaml.Node{}
	yamlKeys(t, &doc, "", inYAML)
	inStruct := map[string]bool{}
	structKeys(reflect.TypeFor[Config](), "", inStruct)

	for k := range inStruct {
		if _, ok := inYAML[k]; !ok {
			t.Errorf("field %q is missing from netsentry.yaml", k)
		}
	}
	for k := range inYAML {
		if !inStruct[k] {
			t.Errorf("key %q of netsentry.yaml has no field in Config", k)
		}
	}
	// The keys of the product description, spelt out.
	for _, k := range []string{
		"log_level", "enable_api", "api_port", "enable_web", "web_port", "enable_packet_capture", "capture_interface",
		"storage.type", "storage.retention_days", "storage.local_path", "storage.remote_url",
		"network_analysis.capture_interfaces", "network_analysis.bpf_filter", "network_analysis.capture_snaplen",
		"network_analysis.enable_protocol_detection", "network_analysis.enable_geolocation", "network_analysis.protocols",
		"alerts.config_path", "alerts.notification_channels", "alerts.notification_channels[].type",
		"alerts.notification_channels[].recipients", "alerts.notification_channels[].url", "alerts.notification_channels[].secret",
		"performance.threads", "performance.packet_batch_size", "performance.use_zero_copy",
		"performance.memory_limit_mb", "performance.enable_lock_free_queues",
		"api_listen", "api_token", "api_read_token", "flows.idle_timeout", "flows.udp_idle_timeout", "flows.active_timeout",
		"flows.tcp_closed_linger", "flows.fragment_timeout", "flows.max_fragments",
	} {
		if !inStruct[k] {
			t.Errorf("key %q of the product description is missing", k)
		}
	}
}

func TestEveryKeyCommented(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal(DefaultYAML, &doc); err != nil {
		t.Fatal(err)
	}
	keys := map[string]*yaml.Node{}
	yamlKeys(t, &doc, "", keys)
	lines := strings.Split(string(DefaultYAML), "\n")
	for path, k := range keys {
		if strings.Contains(path, "[]") {
			continue // inside the commented example
		}
		if k.Line < 2 || !strings.HasPrefix(strings.TrimSpace(lines[k.Line-2]), "#") {
			t.Errorf("netsentry.yaml:%d: key %q has no comment line above it", k.Line, path)
		}
	}
}

func TestCommentedExampleValidates(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal(DefaultYAML, &doc); err != nil {
		t.Fatal(err)
	}
	keys := map[string]*yaml.Node{}
	yamlKeys(t, &doc, "", keys)
	ex := commentedExample(keys["alerts.notification_channels"].HeadComment)
	if ex == "" {
		t.Fatal("no example above alerts.notification_channels")
	}
	in := "alerts:\n  " + strings.ReplaceAll(strings.TrimSpace(ex), "\n", "\n  ") + "\n"
	c, err := Parse([]byte(in), "example.yaml")
	if err != nil {
		t.Fatalf("example does not parse: %v\n%s", err, in)
	}
	// The email channel needs a mail server, and nothing else is missing.
	for i, p := range problems(t, c.Validate()) {
		if !channelRE.MatchString(p.Key) || !strings.Contains(p.Msg, "set alerts.smtp.host") {
			t.Errorf("example problem %d: %s", i, p.Msg)
		}
	}
	c.Alerts.SMTP.Host, c.Alerts.SMTP.From = "mail.example.com", "netsentry@example.com"
	if err := c.Validate(); err != nil {
		t.Errorf("example with a mail server: %v", err)
	}
	want := []NotificationChannel{
		{Type: "email", Recipients: []string{"admin@example.com"}},
		{Type: "webhook", URL: "https://hooks.slack.com/services/XXX/YYY/ZZZ", Secret: "s3cret-hmac-key"},
		{Type: "prometheus-alertmanager", URL: "http://alertmanager:9093/api/v1/alerts"},
	}
	if !reflect.DeepEqual(c.Alerts.NotificationChannels, want) {
		t.Errorf("example channels = %+v, want %+v", c.Alerts.NotificationChannels, want)
	}
}

func TestOverlay(t *testing.T) {
	in := `
api_port: 8181
storage:
  retention_days: 7
network_analysis:
  protocols: [dns]
  capture_interfaces: [eth1, eth2]
flows:
  idle_timeout: 5m
alerts:
  notification_channels:
    - type: webhook
      url: https://example.com/hook
`
	c, err := Parse([]byte(in), "site.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := wantDefault.Clone()
	want.APIPort = 8181
	want.Storage.RetentionDays = 7
	want.NetworkAnalysis.Protocols = []string{"dns"}
	want.NetworkAnalysis.CaptureInterfaces = []string{"eth1", "eth2"}
	want.Flows.IdleTimeout = Duration{5 * time.Minute}
	want.Alerts.NotificationChannels = []NotificationChannel{{Type: "webhook", URL: "https://example.com/hook"}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got\n%+v\nwant\n%+v", c, want)
	}
	if got := c.Interfaces(); !slices.Equal(got, []string{"eth1", "eth2"}) {
		t.Errorf("Interfaces() = %v", got)
	}
}

func TestNulls(t *testing.T) {
	c, err := Parse([]byte("storage:\nnetwork_analysis:\n  protocols:\n  bpf_filter:\n"), "n.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage != wantDefault.Storage {
		t.Errorf("a bare storage: changed the storage defaults: %+v", c.Storage)
	}
	if c.NetworkAnalysis.Protocols != nil {
		t.Errorf("a bare protocols: gave %v, want no protocols", c.NetworkAnalysis.Protocols)
	}
	if c.NetworkAnalysis.BPFFilter != "" {
		t.Errorf("bpf_filter = %q", c.NetworkAnalysis.BPFFilter)
	}
	_, err = Parse([]byte("api_port:\n"), "n.yaml")
	if got := problems(t, err); got[0].String() != "n.yaml:1: api_port: want an integer, got nothing (leave the key out to keep its default)" {
		t.Errorf("bare api_port: %s", got[0])
	}
}

func TestUnknownKey(t *testing.T) {
	in := `log_level: info
network_analysis:
  capture_snaplen: 96
  bpf_filtr: "not port 22"
`
	_, err := Parse([]byte(in), "netsentry.yaml")
	ps := problems(t, err)
	if len(ps) != 1 {
		t.Fatalf("got %d problems, want 1: %v", len(ps), err)
	}
	p := ps[0]
	if p.Line != 4 || p.Key != "network_analysis.bpf_filtr" || p.File != "netsentry.yaml" {
		t.Errorf("problem = %+v", p)
	}
	want := `netsentry.yaml:4: unknown key "network_analysis.bpf_filtr"; did you mean "bpf_filter"?`
	if err.Error() != want {
		t.Errorf("error = %q\nwant    %q", err.Error(), want)
	}

	// A key in the wrong section is pointed to its section.
	_, err = Parse([]byte("\nbpf_filter: tcp\n"), "netsentry.yaml")
	want = `netsentry.yaml:2: unknown key "bpf_filter"; it belongs under another section: "network_analysis.bpf_filter"`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
}

func TestWrongType(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"# c\n\n\n\n\n\napi_port: abc\n", `x.yaml:7: api_port: want an integer, got "abc"`},
		{"api_port: \"8080\"\n", `x.yaml:1: api_port: want an integer, got "8080"`},
		{"api_port: 80.5\n", `x.yaml:1: api_port: want an integer, got 80.5`},
		{"api_port: 99999999999999999999\n", `x.yaml:1: api_port: want an integer, got 99999999999999999999`},
		{"api_port: [1]\n", `x.yaml:1: api_port: want an integer, got a list`},
		{"enable_api: yes\n", `x.yaml:1: enable_api: want true or false, got "yes"`},
		{"enable_api: 1\n", `x.yaml:1: enable_api: want true or false, got 1`},
		{"log_level: {a: b}\n", `x.yaml:1: log_level: want a string, got a mapping`},
		{"storage: local\n", `x.yaml:1: storage: want a mapping of keys, got "local"`},
		{"network_analysis:\n  protocols: dns\n", `x.yaml:2: network_analysis.protocols: want a list, got "dns"`},
		{"network_analysis:\n  protocols:\n    - dns\n    - [tls]\n", `x.yaml:4: network_analysis.protocols[1]: want a string, got a list`},
		{"flows:\n  idle_timeout: 60\n", `x.yaml:2: flows.idle_timeout: want a duration such as "90s" or "5m", got 60`},
		{"flows:\n  idle_timeout: 1 minute\n", `x.yaml:2: flows.idle_timeout: want a duration such as "90s" or "5m", got "1 minute"`},
		{"alerts:\n  notification_channels:\n    - type: email\n    - type: webhook\n      url: [a]\n",
			`x.yaml:5: alerts.notification_channels[1].url: want a string, got a list`},
		{"alerts:\n  notification_channels:\n    - type: email\n      to: me\n",
			`x.yaml:4: unknown key "alerts.notification_channels[0].to"`},
		{"- a\n- b\n", "x.yaml:1: want a mapping of settings such as `log_level: info`, got a list"},
		{"api_port: 1\napi_port: 2\n", `x.yaml:2: duplicate key "api_port" (first set on line 1); keep one`},
		{"a: [\n", "x.yaml:1: did not find expected node content"},
		{"log_level: info\n---\nlog_level: debug\n", "x.yaml:2: a second YAML document; a configuration file holds one (remove the \"---\")"},
	} {
		_, err := Parse([]byte(tc.in), "x.yaml")
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want %s", tc.in, tc.want)
			continue
		}
		problems(t, err)
		if err.Error() != tc.want {
			t.Errorf("Parse(%q):\n got %s\nwant %s", tc.in, err, tc.want)
		}
	}
}

func TestAllProblemsReported(t *testing.T) {
	in := `log_level: info
api_port: http
storage:
  type: local
  retension_days: 3
network_analysis:
  capture_snaplen: lots
flows:
  idle_timeout: 60
  idle_timeout: 90s
`
	_, err := Parse([]byte(in), "many.yaml")
	ps := problems(t, err)
	want := []struct {
		line int
		key  string
	}{
		{2, "api_port"},
		{5, "storage.retension_days"},
		{7, "network_analysis.capture_snaplen"},
		{9, "flows.idle_timeout"},
		{10, "flows.idle_timeout"},
	}
	if len(ps) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for i, w := range want {
		if ps[i].Line != w.line || ps[i].Key != w.key {
			t.Errorf("problem %d = %s (key %q), want line %d key %q", i, ps[i], ps[i].Key, w.line, w.key)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != len(want) {
		t.Errorf("Error() has %d lines, want %d:\n%s", n, len(want), err)
	}
}

func TestTooManyProblems(t *testing.T) {
	var b strings.Builder
	for i := range 500 {
		b.WriteString("k")
		b.WriteString(strings.Repeat("x", i%7))
		b.WriteString(string(rune('a'+i%26)) + string(rune('a'+i/26)) + ": 1\n")
	}
	_, err := Parse([]byte(b.String()), "junk.yaml")
	ps := problems(t, err)
	if len(ps) != maxProblems+1 {
		t.Errorf("got %d problems, want %d", len(ps), maxProblems+1)
	}
	if last := ps[len(ps)-1].Msg; !strings.Contains(last, "fix these first") {
		t.Errorf("last problem = %q", last)
	}
}

func TestAliasesAndMerge(t *testing.T) {
	in := `
alerts:
  notification_channels:
    - &hook
      type: webhook
      url: https://a.example.com/hook
    - <<: *hook
      url: https://b.example.com/hook
    - *hook
network_analysis:
  protocols: &p [dns, tls]
  capture_interfaces: [eth0]
`
	c, err := Parse([]byte(in), "a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []NotificationChannel{
		{Type: "webhook", URL: "https://a.example.com/hook"},
		{Type: "webhook", URL: "https://b.example.com/hook"},
		{Type: "webhook", URL: "https://a.example.com/hook"},
	}
	if !reflect.DeepEqual(c.Alerts.NotificationChannels, want) {
		t.Errorf("channels = %+v", c.Alerts.NotificationChannels)
	}
	if !slices.Equal(c.NetworkAnalysis.Protocols, []string{"dns", "tls"}) {
		t.Errorf("protocols = %v", c.NetworkAnalysis.Protocols)
	}

	// A mapping that merges itself is refused, not followed for ever.
	_, err = Parse([]byte("storage: &s\n  <<: *s\n"), "loop.yaml")
	if ps := problems(t, err); !strings.Contains(ps[0].Msg, "contains itself") {
		t.Errorf("self merge: %v", err)
	}

	// Aliases that multiply are cut off quickly: 3000 uses of a channel
	// whose recipients are a 1000-element list are 3 million values.
	bomb := "network_analysis:\n  protocols: &a [" + strings.Repeat("x,", 1000) + "]\n" +
		"alerts:\n  notification_channels: [&c {recipients: *a}" + strings.Repeat(", *c", 3000) + "]\n"
	start := time.Now()
	_, err = Parse([]byte(bomb), "bomb.yaml")
	ps := problems(t, err)
	if last := ps[len(ps)-1].Msg; !strings.Contains(last, "aliases expand to more than") {
		t.Errorf("alias bomb: last problem %q", last)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("alias bomb took %v", d)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(c *Config)
		key    string
		msg    string // the whole message
	}{
		{"log level", func(c *Config) { c.LogLevel = "verbose" }, "log_level",
			`log_level: "verbose" is not one of debug, info, warn, error`},
		{"api port", func(c *Config) { c.APIPort = 0 }, "api_port",
			"api_port: 0 is not a TCP port; use 1 to 65535"},
		{"web port", func(c *Config) { c.WebPort = 70000 }, "web_port",
			"web_port: 70000 is not a TCP port; use 1 to 65535"},
		{"same ports", func(c *Config) { c.WebPort = 8080 }, "web_port",
			"web_port: 8080 is api_port too; give the web dashboard a port of its own, e.g. 9090"},
		{"snaplen low", func(c *Config) { c.NetworkAnalysis.CaptureSnaplen = 63 }, "network_analysis.capture_snaplen",
			"network_analysis.capture_snaplen: 63 is out of range; use 64 to 262144"},
		{"snaplen high", func(c *Config) { c.NetworkAnalysis.CaptureSnaplen = 262145 }, "network_analysis.capture_snaplen",
			"network_analysis.capture_snaplen: 262145 is out of range; use 64 to 262144"},
		{"threads", func(c *Config) { c.Performance.Threads = 1025 }, "performance.threads",
			"performance.threads: 1025 is out of range; use 0 to 1024"},
		{"negative threads", func(c *Config) { c.Performance.Threads = -1 }, "performance.threads",
			"performance.threads: -1 is out of range; use 0 to 1024"},
		{"batch", func(c *Config) { c.Performance.PacketBatchSize = 0 }, "performance.packet_batch_size",
			"performance.packet_batch_size: 0 is out of range; use 1 to 65536"},
		{"memory", func(c *Config) { c.Performance.MemoryLimitMB = 15 }, "performance.memory_limit_mb",
			"performance.memory_limit_mb: 15; NetSentry needs at least 16 MiB"},
		{"storage type", func(c *Config) { c.Storage.Type = "sqlite" }, "storage.type",
			`storage.type: "sqlite" is not one of local, prometheus, influxdb, victoriametrics`},
		{"retention", func(c *Config) { c.Storage.RetentionDays = 0 }, "storage.retention_days",
			"storage.retention_days: 0; keep data for at least 1 day"},
		{"local path", func(c *Config) { c.Storage.LocalPath = "data" }, "storage.local_path",
			`storage.local_path: "data" is not an absolute path; use e.g. /var/lib/netsentry/data`},
		{"remote store without url", func(c *Config) { c.Storage.Type = "prometheus" }, "storage.remote_url",
			`storage.remote_url: empty, but storage.type is prometheus; set the backend's URL, e.g. http://prometheus:9090 (its --web.enable-remote-write-receiver)`},
		{"no store at all", func(c *Config) { c.Storage.Local = false }, "storage.local",
			"storage.local: false, but storage.type is local, so no metric would be kept; set storage.type to a remote backend, or local: true"},
		{"queue bound", func(c *Config) { c.Storage.RemoteQueueMB = 0 }, "storage.remote_queue_mb",
			"storage.remote_queue_mb: 0 is out of range; use 1 to 65536"},
		{"password alone", func(c *Config) { c.Storage.RemotePassword = "pw" }, "storage.remote_password",
			"storage.remote_password: set, but storage.remote_username is empty; set both (basic auth) or neither"},
		{"token and user", func(c *Config) { c.Storage.RemoteToken = "t"; c.Storage.RemoteUsername = "u" }, "storage.remote_token",
			"storage.remote_token: set, and so is storage.remote_username; use a token or a user and password, not both"},
		{"token with a space", func(c *Config) { c.Storage.RemoteToken = "a b" }, "storage.remote_token",
			"storage.remote_token: contains spaces or control characters, which cannot be sent in a header"},
		{"sensor name", func(c *Config) { c.Storage.SensorName = "a\nb" }, "storage.sensor_name",
			`storage.sensor_name: "a\nb": use at most 128 characters and no control characters, e.g. the host name`},
		{"influx without database", func(c *Config) { c.Storage.Type = "influxdb"; c.Storage.RemoteURL = "http://i:8086" }, "storage.influx_database",
			"storage.influx_database: empty, and so is influx_bucket; set influx_database for InfluxDB 1.x, or influx_org and influx_bucket for 2.x"},
		{"influx both versions", func(c *Config) {
			c.Storage.Type, c.Storage.RemoteURL, c.Storage.InfluxDatabase, c.Storage.InfluxBucket = "influxdb", "http://i:8086", "db", "b"
		}, "storage.influx_database",
			"storage.influx_database: set, and so is influx_bucket or influx_org; set influx_database for InfluxDB 1.x (/write) or influx_org and influx_bucket for 2.x (/api/v2/write), not both"},
		{"influx bucket without org", func(c *Config) {
			c.Storage.Type, c.Storage.RemoteURL, c.Storage.InfluxBucket = "influxdb", "http://i:8086", "b"
		}, "storage.influx_org",
			"storage.influx_org: empty, but influx_bucket is set; InfluxDB 2.x needs the organization of the bucket"},
		{"disk cap", func(c *Config) { c.Storage.MaxDiskMB = 8 }, "storage.max_disk_mb",
			"storage.max_disk_mb: 8; allow the store at least 16 MiB"},
		{"interval short", func(c *Config) { c.Storage.Interval.Duration = 500 * time.Millisecond }, "storage.interval",
			"storage.interval: 500ms; store a sample every 1s to 30m"},
		{"interval long", func(c *Config) { c.Storage.Interval.Duration = 31 * time.Minute }, "storage.interval",
			"storage.interval: 31m; store a sample every 1s to 30m"},
		{"remote bad url", func(c *Config) { c.Storage.RemoteURL = "influx:8086" }, "storage.remote_url",
			`storage.remote_url: "influx:8086" is not an http(s) URL; write it like https://host:port/path`},
		{"protocol", func(c *Config) { c.NetworkAnalysis.Protocols = []string{"dns", "gopher"} }, "network_analysis.protocols[1]",
			`network_analysis.protocols[1]: "gopher" is not one of http, dns, tls, smtp, ssh, quic, http2, ftp, dhcp, ntp, smb, ssdp, mdns, llmnr, pop3, imap, dhcpv6`},
		{"protocol twice", func(c *Config) { c.NetworkAnalysis.Protocols = []string{"dns", "tls", "dns"} }, "network_analysis.protocols[2]",
			`network_analysis.protocols[2]: "dns" is listed twice (also at [0]); list each protocol once`},
		{"secret on email", func(c *Config) {
			c.Alerts.SMTP.Host, c.Alerts.SMTP.From = "mail.example.com", "n@example.com"
			c.Alerts.NotificationChannels = []NotificationChannel{{Type: "email", Recipients: []string{"a@example.com"}, Secret: "k"}}
		}, "alerts.notification_channels[0].secret",
			"alerts.notification_channels[0].secret: only a webhook channel takes a secret (the HMAC-SHA256 key of its signature header); remove it"},
		{"channel type", func(c *Config) { c.Alerts.NotificationChannels = []NotificationChannel{{Type: "sms"}} },
			"alerts.notification_channels[0].type",
			`alerts.notification_channels[0].type: "sms" is not one of email, webhook, prometheus-alertmanager`},
		{"email without recipients", func(c *Config) { c.Alerts.NotificationChannels = []NotificationChannel{{Type: "email"}} },
			"alerts.notification_channels[0].recipients",
			`alerts.notification_channels[0].recipients: empty; an email channel needs at least one address, e.g. ["admin@example.com"]`},
		{"bad recipient", func(c *Config) {
			c.Alerts.NotificationChannels = []NotificationChannel{{Type: "email", Recipients: []string{"a@b.example", "admin"}}}
		}, "alerts.notification_channels[0].recipients[1]",
			`alerts.notification_channels[0].recipients[1]: "admin" is not an email address`},
		{"webhook without url", func(c *Config) {
			c.Alerts.NotificationChannels = []NotificationChannel{{Type: "email", Recipients: []string{"a@b.example"}}, {Type: "webhook"}}
		}, "alerts.notification_channels[1].url",
			"alerts.notification_channels[1].url: empty; a webhook channel needs the http(s) URL to post alerts to"},
		{"alertmanager bad url", func(c *Config) {
			c.Alerts.NotificationChannels = []NotificationChannel{{Type: "prometheus-alertmanager", URL: "ftp://am:9093/"}}
		}, "alerts.notification_channels[0].url",
			`alerts.notification_channels[0].url: "ftp://am:9093/" is not an http(s) URL; write it like https://host:port/path`},
		{"zero idle", func(c *Config) { c.Flows.IdleTimeout = Duration{} }, "flows.idle_timeout",
			`flows.idle_timeout: 0s; use a duration above zero, e.g. "30s"`},
		{"negative linger", func(c *Config) { c.Flows.TCPClosedLinger = secs(-5) }, "flows.tcp_closed_linger",
			`flows.tcp_closed_linger: -5s; use a duration above zero, e.g. "30s"`},
		{"active below idle", func(c *Config) { c.Flows.ActiveTimeout = secs(90) }, "flows.active_timeout",
			"flows.active_timeout: 1m30s is shorter than flows.idle_timeout (2m); make it at least as long"},
		{"active below udp idle", func(c *Config) { c.Flows.UDPIdleTimeout = secs(3600) }, "flows.active_timeout",
			"flows.active_timeout: 30m is shorter than flows.udp_idle_timeout (1h); make it at least as long"},
		{"email without mail server", func(c *Config) {
			c.Alerts.NotificationChannels = []NotificationChannel{{Type: "email", Recipients: []string{"a@b.example"}}}
		}, "alerts.notification_channels[0]",
			"alerts.notification_channels[0]: an email channel needs a mail server: set alerts.smtp.host (and alerts.smtp.from)"},
		{"smtp without from", func(c *Config) { c.Alerts.SMTP.Host = "mail.example.com" }, "alerts.smtp.from",
			"alerts.smtp.from: empty; mail needs a sender address, e.g. netsentry@example.com"},
		{"smtp bad from", func(c *Config) { c.Alerts.SMTP.Host = "mail.example.com"; c.Alerts.SMTP.From = "me" }, "alerts.smtp.from",
			`alerts.smtp.from: "me" is not an email address`},
		{"smtp port", func(c *Config) { c.Alerts.SMTP.Port = 0 }, "alerts.smtp.port",
			"alerts.smtp.port: 0 is not a TCP port; use 1 to 65535"},
		{"smtp tls", func(c *Config) { c.Alerts.SMTP.TLS = "starttls" }, "alerts.smtp.tls",
			`alerts.smtp.tls: "starttls" is not one of mandatory, opportunistic, none`},
		{"smtp password without user", func(c *Config) { c.Alerts.SMTP.Password = "pw" }, "alerts.smtp.password",
			"alerts.smtp.password: set, but alerts.smtp.username is empty; set both (AUTH) or neither"},
		{"no rules dir", func(c *Config) { c.Alerts.ConfigPath = "" }, "alerts.config_path",
			"alerts.config_path: empty; name the directory of the alert rule files, e.g. /etc/netsentry/alerts/"},
		{"copying capture", func(c *Config) { c.Performance.UseZeroCopy = false }, "performance.use_zero_copy",
			"performance.use_zero_copy: false is not supported: the capture always reads packets in place from a memory-mapped TPACKET_V3 ring; remove the key or set it to true"},
		{"locking queues", func(c *Config) { c.Performance.EnableLockFreeQueues = false }, "performance.enable_lock_free_queues",
			"performance.enable_lock_free_queues: false is not supported: the packet path takes no lock (each worker owns its ring and flow-table shard, and live capture never waits on the flow writers); remove the key or set it to true"},
		{"geolocation without database", func(c *Config) { c.NetworkAnalysis.EnableGeolocation = true; c.NetworkAnalysis.GeoIPDB = "" },
			"network_analysis.geoip_db",
			"network_analysis.geoip_db: empty, but enable_geolocation is true; set the path of a MaxMind City or Country database, e.g. /var/lib/GeoIP/GeoLite2-City.mmdb"},
		{"max fragments", func(c *Config) { c.Flows.MaxFragments = 0 }, "flows.max_fragments",
			"flows.max_fragments: 0 is out of range; use 1 to 1048576"},
		{"open api without token", func(c *Config) { c.APIListen = "0.0.0.0" }, "api_token",
			`api_token: empty, but api_listen "0.0.0.0" is not a loopback address, which opens the API to the network; set api_token, or listen on 127.0.0.1`},
		{"short token", func(c *Config) { c.APIToken = "secret" }, "api_token",
			"api_token: too short (6 characters); use at least 16 random characters, e.g. the output of `openssl rand -hex 32`"},
		{"read token without admin token", func(c *Config) { c.APIReadToken = "0123456789abcdef0123" }, "api_read_token",
			"api_read_token: set, but api_token is empty, so every client could change the configuration while reads need a token; set api_token too, or leave api_read_token empty"},
		{"read token equals admin token", func(c *Config) { c.APIToken = "0123456789abcdef0123"; c.APIReadToken = c.APIToken }, "api_read_token",
			"api_read_token: the same as api_token, so it would allow changes too; use a different random string, e.g. the output of `openssl rand -hex 32`"},
		{"short read token", func(c *Config) { c.APIToken = "0123456789abcdef0123"; c.APIReadToken = "dash" }, "api_read_token",
			"api_read_token: too short (4 characters); use at least 16 random characters, e.g. the output of `openssl rand -hex 32`"},
		{"read token with space", func(c *Config) { c.APIToken = "0123456789abcdef0123"; c.APIReadToken = "0123456789 abcdef0123" }, "api_read_token",
			"api_read_token: contains spaces or control characters, which cannot be sent in a header; use e.g. the output of `openssl rand -hex 32`"},
		{"listen not an address", func(c *Config) { c.APIListen = "my-host" }, "api_listen",
			`api_listen: "my-host" is not an IP address; use e.g. 127.0.0.1 (this host only) or 0.0.0.0 (all interfaces)`},
		{"no interface", func(c *Config) { c.CaptureInterface = "" }, "capture_interface",
			"capture_interface: empty, and so is network_analysis.capture_interfaces; name an interface to capture on, e.g. eth0, or set enable_packet_capture: false"},
		{"bad interface", func(c *Config) { c.NetworkAnalysis.CaptureInterfaces = []string{"eth0", "a-very-long-interface"} },
			"network_analysis.capture_interfaces[1]",
			`network_analysis.capture_interfaces[1]: "a-very-long-interface" is longer than 15 bytes, which no interface name is`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.change(&c)
			ps := problems(t, c.Validate())
			if tc.key != "alerts.notification_channels[0]" {
				// Every channel is also refused as not built; that is
				// the case "channel not built".
				ps = slices.DeleteFunc(ps, func(p Problem) bool { return channelRE.MatchString(p.Key) })
			}
			if len(ps) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", len(ps), &Errors{ps})
			}
			if ps[0].Key != tc.key || ps[0].Msg != tc.msg || ps[0].String() != tc.msg {
				t.Errorf("got  key %q: %s\nwant key %q: %s", ps[0].Key, ps[0].Msg, tc.key, tc.msg)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(c *Config)
	}{
		{"open api with token", func(c *Config) { c.APIListen = "0.0.0.0"; c.APIToken = "0123456789abcdef0123" }},
		{"read and admin tokens", func(c *Config) { c.APIToken = "0123456789abcdef0123"; c.APIReadToken = "fedcba9876543210fedc" }},
		{"ipv6 loopback", func(c *Config) { c.APIListen = "::1" }},
		{"localhost", func(c *Config) { c.APIListen = "localhost" }},
		{"open but api off", func(c *Config) { c.APIListen = "0.0.0.0"; c.EnableAPI = false }},
		{"same port, web off", func(c *Config) { c.WebPort = c.APIPort; c.EnableWeb = false }},
		{"no interface, capture off", func(c *Config) { c.CaptureInterface = ""; c.EnablePacketCapture = false }},
		{"edges", func(c *Config) {
			c.NetworkAnalysis.CaptureSnaplen = 64
			c.Performance.Threads = 1024
			c.Performance.PacketBatchSize = 65536
			c.Performance.MemoryLimitMB = 16
			c.Storage.RetentionDays = 1
			c.Flows.ActiveTimeout = c.Flows.IdleTimeout
		}},
		{"remote url kept for later", func(c *Config) { c.Storage.RemoteURL = "http://vm:8428" }},
		{"prometheus remote write", func(c *Config) { c.Storage.Type = "prometheus"; c.Storage.RemoteURL = "http://prometheus:9090" }},
		{"victoriametrics alone", func(c *Config) {
			c.Storage.Type, c.Storage.RemoteURL, c.Storage.Local = "victoriametrics", "http://vm:8428", false
		}},
		{"influxdb 1.x", func(c *Config) {
			c.Storage.Type, c.Storage.RemoteURL, c.Storage.InfluxDatabase = "influxdb", "http://i:8086", "netsentry"
			c.Storage.RemoteUsername, c.Storage.RemotePassword = "u", "p"
		}},
		{"influxdb 2.x", func(c *Config) {
			c.Storage.Type, c.Storage.RemoteURL, c.Storage.InfluxOrg, c.Storage.InfluxBucket = "influxdb", "http://i:8086", "o", "b"
			c.Storage.RemoteToken = "tok"
		}},
		{"geolocation with database", func(c *Config) { c.NetworkAnalysis.EnableGeolocation = true }},
	} {
		c := Default()
		tc.change(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestValidateListsAll(t *testing.T) {
	c := Default()
	c.LogLevel = "loud"
	c.APIPort = -1
	c.Storage.RetentionDays = 0
	c.Flows.MaxFragments = -3
	ps := problems(t, c.Validate())
	var keys []string
	for _, p := range ps {
		keys = append(keys, p.Key)
	}
	want := []string{"log_level", "api_port", "storage.retention_days", "flows.max_fragments"}
	if !slices.Equal(keys, want) {
		t.Errorf("keys = %v, want %v", keys, want)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "netsentry.yaml")
	if err := os.WriteFile(path, []byte("log_level: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.LogLevel != "debug" || c.APIPort != 8080 {
		t.Errorf("Load: log_level %q api_port %d", c.LogLevel, c.APIPort)
	}

	missing := filepath.Join(dir, "nope.yaml")
	_, err = Load(missing)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want an error wrapping fs.ErrNotExist", err)
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path != missing {
		t.Errorf("Load(missing) = %v, want the *fs.PathError for %s", err, missing)
	}
	if _, err := LoadChecked(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadChecked(missing) = %v", err)
	}
}

func TestLoadChecked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "site.yaml")
	in := `log_level: info
api_listen: 0.0.0.0
api_port: 0
performance:
  threads: many
`
	if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadChecked(path)
	problems(t, err)
	want := strings.Join([]string{
		path + `:5: performance.threads: want an integer, got "many"`,
		path + `:3: api_port: 0 is not a TCP port; use 1 to 65535`,
		path + `: api_token: empty, but api_listen "0.0.0.0" is not a loopback address, which opens the API to the network; set api_token, or listen on 127.0.0.1`,
	}, "\n")
	if err.Error() != want {
		t.Errorf("LoadChecked:\n%s\nwant\n%s", err, want)
	}

	// A value that did not decode is not reported again by Validate.
	dup := filepath.Join(t.TempDir(), "dup.yaml")
	in = "network_analysis:\n  protocols: [dns, [x]]\nalerts:\n  notification_channels:\n    - type: email\n      recipients: 5\n"
	if err := os.WriteFile(dup, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadChecked(dup)
	problems(t, err)
	want = strings.Join([]string{
		dup + `:2: network_analysis.protocols[1]: want a string, got a list`,
		dup + `:6: alerts.notification_channels[0].recipients: want a list, got 5`,
		dup + `:5: alerts.notification_channels[0]: an email channel needs a mail server: set alerts.smtp.host (and alerts.smtp.from)`,
	}, "\n")
	if err.Error() != want {
		t.Errorf("LoadChecked:\n%s\nwant\n%s", err, want)
	}

	good := filepath.Join(t.TempDir(), "good.yaml")
	if err := os.WriteFile(good, DefaultYAML, 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := LoadChecked(good); err != nil || !reflect.DeepEqual(c, wantDefault) {
		t.Errorf("LoadChecked(default file) = %+v, %v", c, err)
	}
}

func TestRoundTrip(t *testing.T) {
	c := Config{
		LogLevel: "debug", EnableAPI: false, APIListen: "::", APIPort: 1, APIToken: "tok: with # odd 'chars\"", APIReadToken: "~",
		EnableWeb: false, WebPort: 65535, EnablePacketCapture: false, CaptureInterface: "true",
		Storage: Storage{Type: "influxdb", RetentionDays: 400, LocalPath: "/d", RemoteURL: "http://i:8086"},
		NetworkAnalysis: NetworkAnalysis{
			CaptureInterfaces: []string{"eth0", "0x10", "null"}, BPFFilter: "tcp port 80 or\nudp",
			CaptureSnaplen: 96, EnableProtocolDetection: false, EnableGeolocation: true, Protocols: []string{"smb"},
		},
		Alerts: Alerts{ConfigPath: "", NotificationChannels: []NotificationChannel{
			{Type: "email", Recipients: []string{"a@b.c", "d@e.f"}},
			{Type: "webhook", URL: "https://x/y"},
			{Type: ""},
		}},
		Performance: Performance{Threads: 3, PacketBatchSize: 7, UseZeroCopy: false, MemoryLimitMB: 99999, EnableLockFreeQueues: false},
		Flows: Flows{
			IdleTimeout: Duration{time.Hour}, UDPIdleTimeout: Duration{90 * time.Minute}, ActiveTimeout: Duration{1500 * time.Millisecond},
			TCPClosedLinger: Duration{time.Nanosecond}, FragmentTimeout: Duration{-time.Minute}, MaxFragments: -2,
		},
	}
	for _, c := range []Config{Default(), c} {
		out, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(out, "encoded.yaml")
		if err != nil {
			t.Fatalf("Parse(Encode(c)): %v\n%s", err, out)
		}
		if !reflect.DeepEqual(back, c) {
			t.Errorf("round trip changed the config:\n got %+v\nwant %+v\n%s", back, c, out)
		}
	}
	out, err := Encode(Default())
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"  idle_timeout: 2m\n", "  active_timeout: 30m\n", "api_port: 8080\n", "  protocols:\n    - http\n"} {
		if !strings.Contains(string(out), line) {
			t.Errorf("Encode(Default()) lacks %q:\n%s", line, out)
		}
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 5 * time.Second: "5s", 2 * time.Minute: "2m", time.Hour: "1h", 90 * time.Minute: "1h30m",
		time.Hour + 5*time.Second: "1h0m5s", 1500 * time.Millisecond: "1.5s", -time.Minute: "-1m",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
	// Duration also decodes with plain yaml.v3, for other users of the type.
	var f Flows
	if err := yaml.Unmarshal([]byte("idle_timeout: 90s\n"), &f); err != nil || f.IdleTimeout.Duration != 90*time.Second {
		t.Errorf("yaml.Unmarshal: %v, %v", f.IdleTimeout, err)
	}
	if err := yaml.Unmarshal([]byte("idle_timeout: 90\n"), &f); err == nil {
		t.Error("yaml.Unmarshal accepted a bare number as a duration")
	}
}

func TestInterfaces(t *testing.T) {
	c := Default()
	if got := c.Interfaces(); !slices.Equal(got, []string{"eth0"}) {
		t.Errorf("default Interfaces() = %v", got)
	}
	c.NetworkAnalysis.CaptureInterfaces = []string{"eth1", "eth2"}
	got := c.Interfaces()
	if !slices.Equal(got, []string{"eth1", "eth2"}) {
		t.Errorf("Interfaces() = %v", got)
	}
	got[0] = "changed"
	if c.NetworkAnalysis.CaptureInterfaces[0] != "eth1" {
		t.Error("Interfaces() shares its slice with the config")
	}
	c.NetworkAnalysis.CaptureInterfaces, c.CaptureInterface = nil, ""
	if got := c.Interfaces(); len(got) != 0 {
		t.Errorf("Interfaces() with none set = %v", got)
	}
}

func TestClone(t *testing.T) {
	c := Default()
	c.Alerts.NotificationChannels = []NotificationChannel{{Type: "email", Recipients: []string{"a@b.c"}}}
	d := c.Clone()
	if !reflect.DeepEqual(c, d) {
		t.Fatal("clone differs")
	}
	d.NetworkAnalysis.Protocols[0] = "x"
	d.Alerts.NotificationChannels[0].Recipients[0] = "x"
	if c.NetworkAnalysis.Protocols[0] != "http" || c.Alerts.NotificationChannels[0].Recipients[0] != "a@b.c" {
		t.Error("clone shares slices with the original")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(DefaultYAML)
	f.Add([]byte(""))
	f.Add([]byte("api_port: abc\nstorage: {type: x, nope: 1}\n"))
	f.Add([]byte("alerts:\n  notification_channels:\n    - &h {type: webhook, url: 'http://x'}\n    - <<: *h\n      url: y\n    - *h\n"))
	f.Add([]byte("storage: &s\n  <<: *s\n"))
	f.Add([]byte("flows: {idle_timeout: 1h, active_timeout: -5s}\nnetwork_analysis: {protocols: [dns, ~, 1]}\n"))
	f.Add([]byte("a: [\n"))
	f.Add([]byte("--- 1\n--- 2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml")
		if err != nil {
			var e *Errors
			if !errors.As(err, &e) || len(e.Problems) == 0 {
				t.Fatalf("error %T %v is not an *Errors with problems", err, err)
			}
			for _, p := range e.Problems {
				if p.File != "fuzz.yaml" || p.Msg == "" || p.Line < 0 || strings.Contains(p.String(), "\n") {
					t.Fatalf("malformed problem %+v", p)
				}
			}
			return
		}
		_ = c.Validate()
		out, err := Encode(c)
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		back, err := Parse(out, "encoded.yaml")
		if err != nil {
			t.Fatalf("Parse(Encode(c)): %v\n%s", err, out)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip changed the config:\n got %+v\nwant %+v", back, c)
		}
	})
}

func TestFlowExportValidation(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"flows:\n  export:\n    - type: ipfix\n      address: \"127.0.0.1:4739\"\n      transport: tcp\n", ""},
		{"flows:\n  export:\n    - type: ipfix\n      address: \"[::1]:4739\"\n", ""},
		{"flows:\n  export:\n    - type: kafka\n      address: \"k:9092\"\n", `x.yaml:3: flows.export[0].type: "kafka" is not built in this release`},
		{"flows:\n  export:\n    - type: netflow9\n      address: \"c:2055\"\n", `x.yaml:3: flows.export[0].type: "netflow9" is not a flow export type; use ipfix`},
		{"flows:\n  export:\n    - type: ipfix\n      address: \"c:4739\"\n      transport: sctp\n", `x.yaml:5: flows.export[0].transport: "sctp" is not one of udp, tcp`},
		{"flows:\n  export:\n    - type: ipfix\n      address: \"c\"\n", `x.yaml:4: flows.export[0].address: "c" is not host:port`},
		{"flows:\n  export:\n    - type: ipfix\n      address: \"c:70000\"\n", `x.yaml:4: flows.export[0].address: "c:70000": port "70000" is not 1 to 65535`},
		{"flows:\n  export:\n    - type: ipfix\n      address: \":4739\"\n", `x.yaml:4: flows.export[0].address: ":4739" has no host`},
		{"flows:\n  export:\n    - type: ipfix\n      address: \"c:4739\"\n    - type: ipfix\n      address: \"c:4739\"\n      transport: udp\n",
			`x.yaml:5: flows.export[1]: c:4739 udp is listed twice (also at [0])`},
		{"flows:\n  export:\n    - type: ipfix\n      address: \"c:4739\"\n      port: 1\n", `x.yaml:5: unknown key "flows.export[0].port"`},
	} {
		_, _, err := Check([]byte(tc.in), "x.yaml", nil)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: got %v, want %s", tc.in, err, tc.want)
		}
	}
}
