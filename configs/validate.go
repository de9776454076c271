package configs

import (
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Names that Validate accepts.
var (
	logLevels    = []string{"debug", "info", "warn", "error"}
	storageTypes = []string{"local", "prometheus", "influxdb", "victoriametrics"}
	protocols    = []string{"http", "dns", "tls", "smtp", "ssh", "quic", "http2", "ftp", "dhcp", "ntp", "smb",
		"ssdp", "mdns", "llmnr", "pop3", "imap", "dhcpv6"}
	channelTypes = []string{"email", "webhook", "prometheus-alertmanager"}
	smtpTLS      = []string{"mandatory", "opportunistic", "none"}
)

// Limits that Validate enforces.
const (
	MinSnaplen       = 64
	MaxSnaplen       = 262144
	MaxThreads       = 1024
	MaxBatchSize     = 65536
	MinMemoryLimitMB = 16
	MaxFragments     = 1 << 20
	MinAPITokenLen   = 16
	MaxRemoteQueueMB = 65536
	MaxSensorName    = 128
)

// Validate checks that c makes sense: values in range, names known, ports
// apart, the API not open to the network without a token. It returns an
// *Errors listing every problem, each message starting with the dotted key
// and saying what to do, or nil. Parse and Load do not call it; LoadChecked
// does.
func (c *Config) Validate() error {
	var v validator

	v.oneOf("log_level", c.LogLevel, logLevels)

	v.port("api_port", c.APIPort)
	v.port("web_port", c.WebPort)
	if c.EnableAPI && c.EnableWeb && c.APIPort == c.WebPort {
		v.add("web_port", "%d is api_port too; give the web dashboard a port of its own, e.g. 9090", c.WebPort)
	}
	loopback := true
	switch addr, err := netip.ParseAddr(c.APIListen); {
	case c.APIListen == "localhost":
	case c.APIListen == "":
		v.add("api_listen", "empty; set an IP address, 127.0.0.1 for this host only or 0.0.0.0 for all")
	case err != nil:
		v.add("api_listen", "%q is not an IP address; use e.g. 127.0.0.1 (this host only) or 0.0.0.0 (all interfaces)", c.APIListen)
	default:
		loopback = addr.IsLoopback()
	}
	switch {
	case c.APIToken == "":
		if c.EnableAPI && !loopback {
			v.add("api_token", "empty, but api_listen %q is not a loopback address, which opens the API to the network; set api_token, or listen on 127.0.0.1", c.APIListen)
		}
	case strings.ContainsFunc(c.APIToken, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		v.add("api_token", "contains spaces or control characters, which cannot be sent in a header; use e.g. the output of `openssl rand -hex 32`")
	case len(c.APIToken) < MinAPITokenLen:
		v.add("api_token", "too short (%d characters); use at least %d random characters, e.g. the output of `openssl rand -hex 32`", len(c.APIToken), MinAPITokenLen)
	}
	switch {
	case c.APIReadToken == "":
	case c.APIToken == "":
		v.add("api_read_token", "set, but api_token is empty, so every client could change the configuration while reads need a token; set api_token too, or leave api_read_token empty")
	case c.APIReadToken == c.APIToken:
		v.add("api_read_token", "the same as api_token, so it would allow changes too; use a different random string, e.g. the output of `openssl rand -hex 32`")
	case strings.ContainsFunc(c.APIReadToken, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		v.add("api_read_token", "contains spaces or control characters, which cannot be sent in a header; use e.g. the output of `openssl rand -hex 32`")
	case len(c.APIReadToken) < MinAPITokenLen:
		v.add("api_read_token", "too short (%d characters); use at least %d random characters, e.g. the output of `openssl rand -hex 32`", len(c.APIReadToken), MinAPITokenLen)
	}

	if c.CaptureInterface != "" {
		v.ifname("capture_interface", c.CaptureInterface)
	}
	for i, name := range c.NetworkAnalysis.CaptureInterfaces {
		key := fmt.Sprintf("network_analysis.capture_interfaces[%d]", i)
		v.ifname(key, name)
		if j := slices.Index(c.NetworkAnalysis.CaptureInterfaces[:i], name); j >= 0 {
			v.add(key, "%q is listed twice (also at [%d]); list each interface once", name, j)
		}
	}
	if c.EnablePacketCapture && len(c.Interfaces()) == 0 {
		v.add("capture_interface", "empty, and so is network_analysis.capture_interfaces; name an interface to capture on, e.g. eth0, or set enable_packet_capture: false")
	}

	na := &c.NetworkAnalysis
	v.between("network_analysis.capture_snaplen", na.CaptureSnaplen, MinSnaplen, MaxSnaplen)
	for i, p := range na.Protocols {
		key := fmt.Sprintf("network_analysis.protocols[%d]", i)
		v.oneOf(key, p, protocols)
		if j := slices.Index(na.Protocols[:i], p); j >= 0 && slices.Contains(protocols, p) {
			v.add(key, "%q is listed twice (also at [%d]); list each protocol once", p, j)
		}
	}

	if na.EnableGeolocation && na.GeoIPDB == "" {
		v.add("network_analysis.geoip_db", "empty, but enable_geolocation is true; set the path of a MaxMind City or Country database, e.g. /var/lib/GeoIP/GeoLite2-City.mmdb")
	}

	st := &c.Storage
	v.oneOf("storage.type", st.Type, storageTypes)
	if st.MaxDiskMB < 16 {
		v.add("storage.max_disk_mb", "%d; allow the store at least 16 MiB", st.MaxDiskMB)
	}
	if st.Interval.Duration < time.Second || st.Interval.Duration > 30*time.Minute { // store.MaxInterval
		v.add("storage.interval", "%s; store a sample every 1s to 30m", formatDuration(st.Interval.Duration))
	}
	if st.RetentionDays < 1 {
		v.add("storage.retention_days", "%d; keep data for at least 1 day", st.RetentionDays)
	}
	// The directory holds the remote send queue too, so it is needed
	// whatever the type.
	if !filepath.IsAbs(st.LocalPath) {
		v.add("storage.local_path", "%q is not an absolute path; use e.g. /var/lib/netsentry/data", st.LocalPath)
	}
	if st.RemoteURL != "" {
		v.httpURL("storage.remote_url", st.RemoteURL)
	}
	v.remote(st)
	v.alerts(&c.Alerts)

	p := &c.Performance
	v.between("performance.threads", p.Threads, 0, MaxThreads)
	seenCPU := map[int]bool{}
	for i, cpu := range p.CPUs {
		key := fmt.Sprintf("performance.cpus[%d]", i)
		v.between(key, cpu, 0, MaxThreads-1)
		if seenCPU[cpu] {
			v.add(key, "CPU %d is listed twice", cpu)
		}
		seenCPU[cpu] = true
	}
	v.between("performance.packet_batch_size", p.PacketBatchSize, 1, MaxBatchSize)
	if !p.UseZeroCopy {
		v.add("performance.use_zero_copy", "false is not supported: the capture always reads packets in place from a memory-mapped TPACKET_V3 ring; remove the key or set it to true")
	}
	if !p.EnableLockFreeQueues {
		v.add("performance.enable_lock_free_queues", "false is not supported: the packet path takes no lock (each worker owns its ring and flow-table shard, and live capture never waits on the flow writers); remove the key or set it to true")
	}
	v.between("performance.block_timeout_ms", p.BlockTimeoutMs, 1, 1000)
	if p.RingSizeMB != 0 {
		v.between("performance.ring_size_mb", p.RingSizeMB, 2, 1024)
	}
	if p.MemoryLimitMB < MinMemoryLimitMB {
		v.add("performance.memory_limit_mb", "%d; NetSentry needs at least %d MiB", p.MemoryLimitMB, MinMemoryLimitMB)
	}

	f := &c.Flows
	v.positive("flows.idle_timeout", f.IdleTimeout)
	v.positive("flows.udp_idle_timeout", f.UDPIdleTimeout)
	v.positive("flows.active_timeout", f.ActiveTimeout)
	v.positive("flows.tcp_closed_linger", f.TCPClosedLinger)
	v.positive("flows.fragment_timeout", f.FragmentTimeout)
	longest, longestKey := f.IdleTimeout, "flows.idle_timeout"
	if f.UDPIdleTimeout.Duration > longest.Duration {
		longest, longestKey = f.UDPIdleTimeout, "flows.udp_idle_timeout"
	}
	if f.ActiveTimeout.Duration > 0 && f.ActiveTimeout.Duration < longest.Duration {
		v.add("flows.active_timeout", "%s is shorter than %s (%s); make it at least as long",
			formatDuration(f.ActiveTimeout.Duration), longestKey, formatDuration(longest.Duration))
	}
	v.between("flows.max_fragments", f.MaxFragments, 1, MaxFragments)
	v.export(f.Export)

	if len(v.problems) == 0 {
		return nil
	}
	return &Errors{Problems: v.problems}
}

// export checks flows.export: each entry an IPFIX collector at host:port
// over udp or tcp, listed once.
func (v *validator) export(list []FlowExport) {
	for i, e := range list {
		key := fmt.Sprintf("flows.export[%d]", i)
		switch e.Type {
		case "ipfix":
		case "kafka":
			v.add(key+".type", "\"kafka\" is not built in this release (only ipfix is); export IPFIX to a collector that feeds Kafka, e.g. goflow2")
		case "":
			v.add(key+".type", "empty; set type: ipfix")
		default:
			v.add(key+".type", "%q is not a flow export type; use ipfix", e.Type)
		}
		switch e.Transport {
		case "", "udp", "tcp":
		default:
			v.add(key+".transport", "%q is not one of udp, tcp", e.Transport)
		}
		host, port, err := net.SplitHostPort(e.Address)
		switch {
		case e.Address == "":
			v.add(key+".address", "empty; set the collector's host:port, e.g. \"collector:4739\"")
		case err != nil:
			v.add(key+".address", "%q is not host:port; write it like \"collector:4739\" or \"[2001:db8::1]:4739\"", e.Address)
		case host == "":
			v.add(key+".address", "%q has no host; name the collector, e.g. \"collector:4739\"", e.Address)
		default:
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				v.add(key+".address", "%q: port %q is not 1 to 65535", e.Address, port)
			}
		}
		for j, o := range list[:i] {
			if o.Address == e.Address && o.ExportTransport() == e.ExportTransport() && o.Type == e.Type {
				v.add(key, "%s %s is listed twice (also at [%d]); list each collector once", e.Address, e.ExportTransport(), j)
				break
			}
		}
	}
}

// ExportTransport is the transport of a flows.export entry: its
// transport, udp when left empty.
func (e FlowExport) ExportTransport() string {
	if e.Transport == "" {
		return "udp"
	}
	return e.Transport
}

// alerts checks the alerts section: the channels (types email, webhook,
// prometheus-alertmanager; recipients, URLs) and the SMTP server that
// email channels need.
func (v *validator) alerts(a *Alerts) {
	if a.ConfigPath == "" {
		v.add("alerts.config_path", "empty; name the directory of the alert rule files, e.g. /etc/netsentry/alerts/")
	}
	for i, ch := range a.NotificationChannels {
		key := fmt.Sprintf("alerts.notification_channels[%d]", i)
		v.oneOf(key+".type", ch.Type, channelTypes)
		switch ch.Type {
		case "email":
			if len(ch.Recipients) == 0 {
				v.add(key+".recipients", "empty; an email channel needs at least one address, e.g. [\"admin@example.com\"]")
			}
			for j, r := range ch.Recipients {
				if _, err := mail.ParseAddress(r); err != nil {
					v.add(fmt.Sprintf("%s.recipients[%d]", key, j), "%q is not an email address", r)
				}
			}
			if ch.URL != "" {
				v.add(key+".url", "an email channel has no url; remove it, or use type webhook")
			}
			if a.SMTP.Host == "" {
				v.add(key, "an email channel needs a mail server: set alerts.smtp.host (and alerts.smtp.from)")
			}
		case "webhook", "prometheus-alertmanager":
			if ch.URL == "" {
				v.add(key+".url", "empty; a %s channel needs the http(s) URL to post alerts to", ch.Type)
			} else {
				v.httpURL(key+".url", ch.URL)
			}
			if len(ch.Recipients) > 0 {
				v.add(key+".recipients", "a %s channel has no recipients; remove them, or use type email", ch.Type)
			}
		}
		if ch.Secret != "" && ch.Type != "webhook" {
			v.add(key+".secret", "only a webhook channel takes a secret (the HMAC-SHA256 key of its signature header); remove it")
		}
		if len(ch.Secret) > 4096 {
			v.add(key+".secret", "longer than 4096 bytes")
		}
	}
	m := &a.SMTP
	v.port("alerts.smtp.port", m.Port)
	v.oneOf("alerts.smtp.tls", m.TLS, smtpTLS)
	if m.Host != "" {
		if m.From == "" {
			v.add("alerts.smtp.from", "empty; mail needs a sender address, e.g. netsentry@example.com")
		} else if _, err := mail.ParseAddress(m.From); err != nil {
			v.add("alerts.smtp.from", "%q is not an email address", m.From)
		}
	} else if m.From != "" {
		if _, err := mail.ParseAddress(m.From); err != nil {
			v.add("alerts.smtp.from", "%q is not an email address", m.From)
		}
	}
	if m.Password != "" && m.Username == "" {
		v.add("alerts.smtp.password", "set, but alerts.smtp.username is empty; set both (AUTH) or neither")
	}
}

// remote checks the keys of a remote storage backend.
func (v *validator) remote(st *Storage) {
	if !st.Local && !st.Remote() {
		v.add("storage.local", "false, but storage.type is local, so no metric would be kept; set storage.type to a remote backend, or local: true")
	}
	if st.SensorName != "" && (len(st.SensorName) > MaxSensorName || strings.ContainsFunc(st.SensorName, unicode.IsControl)) {
		v.add("storage.sensor_name", "%q: use at most %d characters and no control characters, e.g. the host name", st.SensorName, MaxSensorName)
	}
	if st.RemoteQueueMB < 1 || st.RemoteQueueMB > MaxRemoteQueueMB {
		v.add("storage.remote_queue_mb", "%d is out of range; use 1 to %d", st.RemoteQueueMB, MaxRemoteQueueMB)
	}
	if st.RemotePassword != "" && st.RemoteUsername == "" {
		v.add("storage.remote_password", "set, but storage.remote_username is empty; set both (basic auth) or neither")
	}
	if st.RemoteToken != "" && st.RemoteUsername != "" {
		v.add("storage.remote_token", "set, and so is storage.remote_username; use a token or a user and password, not both")
	}
	for _, k := range []struct{ key, val string }{{"remote_token", st.RemoteToken}, {"remote_username", st.RemoteUsername}} {
		if strings.ContainsFunc(k.val, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
			v.add("storage."+k.key, "contains spaces or control characters, which cannot be sent in a header")
		}
	}
	if _, known := exampleURL[st.Type]; !known {
		return
	}
	if st.RemoteURL == "" {
		v.add("storage.remote_url", "empty, but storage.type is %s; set the backend's URL, e.g. %s", st.Type, exampleURL[st.Type])
	}
	if st.Type != "influxdb" {
		return
	}
	switch {
	case st.InfluxDatabase != "" && (st.InfluxBucket != "" || st.InfluxOrg != ""):
		v.add("storage.influx_database", "set, and so is influx_bucket or influx_org; set influx_database for InfluxDB 1.x (/write) or influx_org and influx_bucket for 2.x (/api/v2/write), not both")
	case st.InfluxDatabase == "" && st.InfluxBucket == "":
		v.add("storage.influx_database", "empty, and so is influx_bucket; set influx_database for InfluxDB 1.x, or influx_org and influx_bucket for 2.x")
	case st.InfluxBucket != "" && st.InfluxOrg == "":
		v.add("storage.influx_org", "empty, but influx_bucket is set; InfluxDB 2.x needs the organization of the bucket")
	}
}

// exampleURL is a backend's URL in messages.
var exampleURL = map[string]string{
	"prometheus":      "http://prometheus:9090 (its --web.enable-remote-write-receiver)",
	"victoriametrics": "http://victoriametrics:8428",
	"influxdb":        "http://influxdb:8086",
}

type validator struct {
	problems []Problem
}

func (v *validator) add(key, format string, args ...any) {
	v.problems = append(v.problems, Problem{Key: key, Msg: key + ": " + fmt.Sprintf(format, args...)})
}

func (v *validator) oneOf(key, value string, allowed []string) {
	if !slices.Contains(allowed, value) {
		v.add(key, "%q is not one of %s", value, strings.Join(allowed, ", "))
	}
}

func (v *validator) between(key string, value, lo, hi int) {
	if value < lo || value > hi {
		v.add(key, "%d is out of range; use %d to %d", value, lo, hi)
	}
}

func (v *validator) port(key string, port int) {
	if port < 1 || port > 65535 {
		v.add(key, "%d is not a TCP port; use 1 to 65535", port)
	}
}

func (v *validator) positive(key string, d Duration) {
	if d.Duration <= 0 {
		v.add(key, "%s; use a duration above zero, e.g. \"30s\"", formatDuration(d.Duration))
	}
}

func (v *validator) httpURL(key, s string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.add(key, "%q is not an http(s) URL; write it like https://host:port/path", s)
	}
}

// ifname checks a Linux interface name as the kernel would (dev_valid_name).
func (v *validator) ifname(key, name string) {
	const maxLen = 15 // IFNAMSIZ less the NUL
	switch {
	case name == "":
		v.add(key, "empty; name an interface, e.g. eth0")
	case len(name) > maxLen:
		v.add(key, "%q is longer than %d bytes, which no interface name is", name, maxLen)
	case name == "." || name == ".." || strings.ContainsFunc(name, func(r rune) bool {
		return r == '/' || r == ':' || unicode.IsSpace(r) || unicode.IsControl(r)
	}):
		v.add(key, "%q is not a valid interface name", name)
	}
}
