package configs

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// DefaultYAML is the default configuration file, netsentry.yaml. It documents
// every key and is the single source of default values: Default decodes it.
//
//go:embed netsentry.yaml
var DefaultYAML []byte

// Config is NetSentry's whole configuration. The yaml tags are the keys of
// netsentry.yaml; see that file for what each key means.
type Config struct {
	LogLevel            string          `yaml:"log_level"`
	EnableAPI           bool            `yaml:"enable_api"`
	APIListen           string          `yaml:"api_listen"`
	APIPort             int             `yaml:"api_port"`
	APIToken            string          `yaml:"api_token"`
	APIReadToken        string          `yaml:"api_read_token"`
	EnableWeb           bool            `yaml:"enable_web"`
	WebPort             int             `yaml:"web_port"`
	EnablePacketCapture bool            `yaml:"enable_packet_capture"`
	CaptureInterface    string          `yaml:"capture_interface"`
	Storage             Storage         `yaml:"storage"`
	NetworkAnalysis     NetworkAnalysis `yaml:"network_analysis"`
	Alerts              Alerts          `yaml:"alerts"`
	Performance         Performance     `yaml:"performance"`
	Flows               Flows           `yaml:"flows"`
}

// Storage says where metrics and flow records are kept.
type Storage struct {
	Type          string `yaml:"type"` // local, prometheus, influxdb, victoriametrics
	RetentionDays int    `yaml:"retention_days"`
	LocalPath     string `yaml:"local_path"`
	RemoteURL     string `yaml:"remote_url"`
	// MaxDiskMB caps the local store's size on disk (metrics and flow
	// history together); the oldest partitions are deleted past it.
	MaxDiskMB int `yaml:"max_disk_mb"`
	// Interval is how often a sample of every metric is stored.
	Interval Duration `yaml:"interval"`
	// Local keeps the metrics in the local store too when Type names a
	// remote backend; with Type local it must be true.
	Local bool `yaml:"local"`
	// SensorName is the value of the sensor label every series sent to a
	// remote backend carries; "" = the host name.
	SensorName string `yaml:"sensor_name"`
	// RemoteQueueMB bounds the on-disk queue of samples waiting for the
	// remote backend; past it the oldest are dropped and counted.
	RemoteQueueMB int `yaml:"remote_queue_mb"`
	// RemoteToken is a bearer token (prometheus, victoriametrics) or an
	// InfluxDB 2.x API token; RemoteUsername and RemotePassword are HTTP
	// basic auth (InfluxDB 1.x: its user).
	RemoteToken    string `yaml:"remote_token"`
	RemoteUsername string `yaml:"remote_username"`
	RemotePassword string `yaml:"remote_password"`
	// InfluxDatabase is the InfluxDB 1.x database (/write); InfluxOrg and
	// InfluxBucket the InfluxDB 2.x organization and bucket (/api/v2/write).
	InfluxDatabase string `yaml:"influx_database"`
	InfluxOrg      string `yaml:"influx_org"`
	InfluxBucket   string `yaml:"influx_bucket"`
}

// Remote reports whether Type names a remote backend.
func (s Storage) Remote() bool { return s.Type != "" && s.Type != "local" }

// NetworkAnalysis configures packet capture and protocol detection.
type NetworkAnalysis struct {
	CaptureInterfaces       []string `yaml:"capture_interfaces"`
	BPFFilter               string   `yaml:"bpf_filter"`
	CaptureSnaplen          int      `yaml:"capture_snaplen"`
	EnableProtocolDetection bool     `yaml:"enable_protocol_detection"`
	EnableGeolocation       bool     `yaml:"enable_geolocation"`
	GeoIPDB                 string   `yaml:"geoip_db"` // MaxMind City or Country database
	ASNDB                   string   `yaml:"asn_db"`   // MaxMind ASN database; "" = no AS numbers
	Protocols               []string `yaml:"protocols"`
}

// Alerts configures alert rules and where alerts are sent.
type Alerts struct {
	ConfigPath           string                `yaml:"config_path"`
	NotificationChannels []NotificationChannel `yaml:"notification_channels"`
	SMTP                 SMTP                  `yaml:"smtp"`
}

// SMTP is the mail server email channels send through.
type SMTP struct {
	Host     string `yaml:"host"` // "" = no mail server: an email channel is an error
	Port     int    `yaml:"port"`
	Username string `yaml:"username"` // "" = no AUTH
	Password string `yaml:"password"`
	From     string `yaml:"from"`
	TLS      string `yaml:"tls"` // mandatory | opportunistic | none
}

// NotificationChannel is one place alerts are sent to.
type NotificationChannel struct {
	Type       string   `yaml:"type"` // email, webhook, prometheus-alertmanager
	Recipients []string `yaml:"recipients,omitempty"`
	URL        string   `yaml:"url,omitempty"`
	Secret     string   `yaml:"secret,omitempty"` // webhook: HMAC-SHA256 key of the signature header
}

// Performance holds tuning knobs for the capture workers.
type Performance struct {
	Threads              int   `yaml:"threads"` // 0 = automatic
	CPUs                 []int `yaml:"cpus"`    // CPUs workers are pinned to; empty = every CPU allowed
	PacketBatchSize      int   `yaml:"packet_batch_size"`
	UseZeroCopy          bool  `yaml:"use_zero_copy"`
	MemoryLimitMB        int   `yaml:"memory_limit_mb"`
	RingSizeMB           int   `yaml:"ring_size_mb"`     // capture rings, all queues; 0 = memory_limit_mb/8
	BlockTimeoutMs       int   `yaml:"block_timeout_ms"` // a partly filled ring block reaches the worker after this
	EnableLockFreeQueues bool  `yaml:"enable_lock_free_queues"`
}

// Flows says when a tracked flow ends and its record is written.
type Flows struct {
	IdleTimeout     Duration `yaml:"idle_timeout"`
	UDPIdleTimeout  Duration `yaml:"udp_idle_timeout"`
	ActiveTimeout   Duration `yaml:"active_timeout"`
	TCPClosedLinger Duration `yaml:"tcp_closed_linger"`
	FragmentTimeout Duration `yaml:"fragment_timeout"`
	MaxFragments    int      `yaml:"max_fragments"`
	// Export lists the flow collectors every ended flow is sent to.
	Export []FlowExport `yaml:"export"`
}

// FlowExport is one collector that ended flows are exported to.
type FlowExport struct {
	Type      string `yaml:"type"`      // ipfix (kafka is not built)
	Address   string `yaml:"address"`   // host:port, e.g. "collector:4739"
	Transport string `yaml:"transport"` // udp or tcp; "" = udp
}

// Duration is a time.Duration written in YAML as a Go duration string such
// as "90s" or "5m". A bare number is refused, since its unit would be a
// guess.
type Duration struct {
	time.Duration
}

// MarshalYAML writes d as a duration string, shortest form ("2m", not "2m0s").
func (d Duration) MarshalYAML() (any, error) {
	return formatDuration(d.Duration), nil
}

// UnmarshalYAML reads a duration string. It lets Duration be decoded by
// plain yaml.Unmarshal too; Parse and Load do not go through it.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, msg := decodeDuration(n)
	if msg != "" {
		return fmt.Errorf("line %d: %s", n.Line, msg)
	}
	d.Duration = v
	return nil
}

func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") { // "2m0s" -> "2m", "1h0m0s" -> "1h0m"
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") { // "1h0m" -> "1h"
		s = s[:len(s)-2]
	}
	return s
}

// Default returns the default configuration, decoded from DefaultYAML.
func Default() Config {
	var c Config
	if _, err := decode(&c, DefaultYAML, "netsentry.yaml (embedded)"); err != nil {
		panic("BUG: embedded default configuration does not decode: " + err.Error())
	}
	return c
}

// Parse decodes data, a configuration file named name (the name is only
// used in messages), laid over Default: keys that data leaves out keep their
// defaults, lists replace the default list whole. Empty data gives the
// defaults. Decoding is strict; on any problem Parse returns an *Errors
// listing them all, and a zero Config. Parse does not call Validate.
func Parse(data []byte, name string) (Config, error) {
	c := Default()
	if _, err := decode(&c, data, name); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Load reads the configuration file at path and parses it like Parse.
// A file that cannot be read gives the os error, wrapped.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path)
}

// LoadChecked loads the file at path like Load and validates the result like
// Validate. It reports every problem of both kinds in one *Errors, each with
// its file and, where the key is set in the file, its line; this is what
// --check-config prints. On any problem it returns a zero Config.
func LoadChecked(path string) (Config, error) {
	c, _, err := CheckFile(path)
	return c, err
}

// Encode writes c as YAML in the layout of netsentry.yaml (without its
// comments), such that Parse gives c back.
func Encode(c Config) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return buf.Bytes(), nil
}

// Interfaces returns the interfaces to capture on:
// network_analysis.capture_interfaces if it is set, else capture_interface
// alone (none if that is empty too). The slice is the caller's.
func (c Config) Interfaces() []string {
	if len(c.NetworkAnalysis.CaptureInterfaces) > 0 {
		return slices.Clone(c.NetworkAnalysis.CaptureInterfaces)
	}
	if c.CaptureInterface == "" {
		return nil
	}
	return []string{c.CaptureInterface}
}

// Clone returns a deep copy of c, sharing no slices with it.
func (c Config) Clone() Config {
	c.NetworkAnalysis.CaptureInterfaces = slices.Clone(c.NetworkAnalysis.CaptureInterfaces)
	c.NetworkAnalysis.Protocols = slices.Clone(c.NetworkAnalysis.Protocols)
	ch := slices.Clone(c.Alerts.NotificationChannels)
	for i := range ch {
		ch[i].Recipients = slices.Clone(ch[i].Recipients)
	}
	c.Alerts.NotificationChannels = ch
	c.Flows.Export = slices.Clone(c.Flows.Export)
	return c
}
