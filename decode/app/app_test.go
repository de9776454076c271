package app

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/gopacket/gopacket/layers"
)

// TestStateSize pins the size of State: flow slabs embed one per flow.
func TestStateSize(t *testing.T) {
	const want = 448
	if got := unsafe.Sizeof(State{}); got != want {
		t.Fatalf("State is %d bytes, want %d: update the documented size if this is meant", got, want)
	}
}

// TestStateLayout keeps State a whole number of cache lines, so that each
// State of a flow table's slab (whose chunks start on a page) has lines of
// its own, and keeps what a DNS message of an open flow touches (Feed's
// checks, setClient, the counts and rcode, the names' bookkeeping) in the
// first line.
func TestStateLayout(t *testing.T) {
	if n := unsafe.Sizeof(State{}); n%64 != 0 {
		t.Errorf("State is %d bytes, not a multiple of 64", n)
	}
	var s State
	for name, end := range map[string]uintptr{
		"Proto":   unsafe.Offsetof(s.Proto) + unsafe.Sizeof(s.Proto),
		"Guess":   unsafe.Offsetof(s.Guess) + unsafe.Sizeof(s.Guess),
		"l4":      unsafe.Offsetof(s.l4) + unsafe.Sizeof(s.l4),
		"cli":     unsafe.Offsetof(s.cli) + unsafe.Sizeof(s.cli),
		"pkts":    unsafe.Offsetof(s.pkts) + unsafe.Sizeof(s.pkts),
		"flags":   unsafe.Offsetof(s.flags) + unsafe.Sizeof(s.flags),
		"queries": unsafe.Offsetof(s.queries) + unsafe.Sizeof(s.queries),
		"replies": unsafe.Offsetof(s.replies) + unsafe.Sizeof(s.replies),
		"rcode":   unsafe.Offsetof(s.rcode) + unsafe.Sizeof(s.rcode),
		"answers": unsafe.Offsetof(s.answers) + unsafe.Sizeof(s.answers),
		"qtype":   unsafe.Offsetof(s.qtype) + unsafe.Sizeof(s.qtype),
		"names":   unsafe.Offsetof(s.names) + unsafe.Sizeof(s.names),
		"nameOff": unsafe.Offsetof(s.nameOff) + unsafe.Sizeof(s.nameOff),
		"used":    unsafe.Offsetof(s.used) + unsafe.Sizeof(s.used),
		"dnsSkip": unsafe.Offsetof(s.dnsSkip) + unsafe.Sizeof(s.dnsSkip),
		"dnsHalf": unsafe.Offsetof(s.dnsHalf) + unsafe.Sizeof(s.dnsHalf),
	} {
		if end > 64 {
			t.Errorf("%s ends at byte %d, past the first cache line", name, end)
		}
	}
}

// TestStateHasNoPointers keeps flow slabs invisible to the garbage
// collector: no pointer, slice, string, map, interface, chan or func.
func TestStateHasNoPointers(t *testing.T) {
	var walk func(reflect.Type, string)
	walk = func(ty reflect.Type, path string) {
		switch ty.Kind() {
		case reflect.Struct:
			for i := range ty.NumField() {
				walk(ty.Field(i).Type, path+"."+ty.Field(i).Name)
			}
		case reflect.Array:
			walk(ty.Elem(), path+"[]")
		case reflect.Pointer, reflect.Slice, reflect.String, reflect.Map, reflect.Interface,
			reflect.Chan, reflect.Func, reflect.UnsafePointer:
			t.Errorf("%s is a %s", path, ty.Kind())
		}
	}
	walk(reflect.TypeOf(State{}), "State")
}

// feedAll feeds payloads alternating as given: each element says who sends.
type seg struct {
	fromInit bool
	data     string
}

func run(p *Pool, l4 uint8, cport, sport uint16, segs ...seg) *State {
	return runInto(new(State), p, l4, cport, sport, segs...)
}

// runInto is run feeding s.
func runInto(s *State, p *Pool, l4 uint8, cport, sport uint16, segs ...seg) *State {
	for _, g := range segs {
		sp, dp := cport, sport
		if !g.fromInit {
			sp, dp = sport, cport
		}
		s.Feed(p, []byte(g.data), g.fromInit, l4, sp, dp)
	}
	s.Release(p)
	return s
}

func jsonOf(t *testing.T, s *State) map[string]any {
	t.Helper()
	js := s.AppendJSON(nil)
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatalf("invalid JSON %s: %v", js, err)
	}
	return m
}

// get walks a JSON object by keys.
func get(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[k]
	}
	return v
}

// hello builds a TLS ClientHello record from cipher suites and extensions.
type ext struct {
	typ  uint16
	data []byte
}

func u16s(vs ...uint16) []byte {
	b := make([]byte, 0, 2*len(vs))
	for _, v := range vs {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	return b
}

func vec16(b []byte) []byte { return append(u16s(uint16(len(b))), b...) }
func vec8(b []byte) []byte  { return append([]byte{byte(len(b))}, b...) }

func sniExt(name string) ext {
	return ext{0x0000, vec16(append([]byte{0}, vec16([]byte(name))...))}
}

func alpnExt(protos ...string) ext {
	var l []byte
	for _, p := range protos {
		l = append(l, vec8([]byte(p))...)
	}
	return ext{0x0010, vec16(l)}
}

func helloMsg(version uint16, ciphers []uint16, exts []ext) []byte {
	body := u16s(version)
	body = append(body, make([]byte, 32)...)
	body = append(body, 0) // session id
	body = append(body, vec16(u16s(ciphers...))...)
	body = append(body, 1, 0) // compression: null
	var e []byte
	for _, x := range exts {
		e = append(e, u16s(x.typ)...)
		e = append(e, vec16(x.data)...)
	}
	if exts != nil {
		body = append(body, vec16(e)...)
	}
	return append([]byte{1, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
}

// records wraps a handshake message in TLS records of at most max bytes.
func records(msg []byte, max int) []byte {
	var out []byte
	for len(msg) > 0 {
		n := min(max, len(msg))
		out = append(out, 22, 3, 1, byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

// specHello is the ClientHello of the JA4 spec's example (JA4_ro of
// technical_details/JA4.md), with GREASE values added that JA4 must ignore.
func specHello() []byte {
	ciphers := []uint16{0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035}
	sig := ext{0x000d, vec16(u16s(0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601))}
	groups := ext{0x000a, vec16(u16s(0x3a3a, 0x001d, 0x0017, 0x0018))}
	points := ext{0x000b, vec8([]byte{0})}
	versions := ext{0x002b, vec8(u16s(0x7a7a, 0x0304, 0x0303))}
	exts := []ext{
		{0x2a2a, nil}, {0x001b, []byte{2, 0, 2}}, sniExt("www.example.com"), {0x0033, vec16(nil)},
		alpnExt("h2", "http/1.1"), {0x4469, vec16(nil)}, {0x0017, nil}, {0x002d, vec8([]byte{1})},
		sig, {0x0005, []byte{1, 0, 0, 0, 0}}, {0x0023, nil}, {0x0012, nil}, versions,
		{0xff01, []byte{0}}, points, groups, {0x0015, make([]byte, 20)}, {0x4a4a, []byte{0}},
	}
	return helloMsg(0x0303, ciphers, exts)
}

func TestJA4SpecExample(t *testing.T) {
	s := run(NewPool(1), 6, 50000, 443, seg{true, string(records(specHello(), 16384))})
	m := jsonOf(t, s)
	if got := get(m, "tls", "ja4"); got != "t13d1516h2_8daaf6152771_e5627efa2ab1" {
		t.Errorf("ja4 %v, spec t13d1516h2_8daaf6152771_e5627efa2ab1", got)
	}
	if got := get(m, "tls", "sni"); got != "www.example.com" {
		t.Errorf("sni %v", got)
	}
	if got := get(m, "tls", "alpn"); got != "h2" {
		t.Errorf("alpn %v", got)
	}
	if got := get(m, "tls", "version"); got != "TLS 1.3" {
		t.Errorf("version %v (offered max, no ServerHello)", got)
	}
	if s.Name() != "HTTPS" || s.Proto.String() != "TLS" {
		t.Errorf("name %s proto %s", s.Name(), s.Proto)
	}
}

// TestJA4SpecHashes checks the hash part against the spec's worked examples.
func TestJA4SpecHashes(t *testing.T) {
	for in, want := range map[string]string{
		"002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9":                                    "8daaf6152771",
		"0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601": "e5627efa2ab1",
		"0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01":                                         "6d807ffa2a79",
		"": "000000000000",
	} {
		var out [12]byte
		ja4Hash(out[:], []byte(in))
		if string(out[:]) != want {
			t.Errorf("ja4Hash(%q) = %s, spec %s", in, out[:], want)
		}
	}
}

// TestJA4ALPN checks the ALPN characters against the spec's examples.
func TestJA4ALPN(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want string
	}{
		{[]byte("h2"), "h2"}, {[]byte("http/1.1"), "h1"}, {nil, "00"}, {[]byte("x"), "xx"},
		{[]byte{0xab}, "ab"}, {[]byte{0x20}, "20"}, {[]byte{0xab, 0xcd}, "ad"}, {[]byte{0x20, 0x61}, "21"},
		{[]byte{0x30, 0xab}, "3b"}, {[]byte{0x61, 0x20}, "60"}, {[]byte{0x30, 0x31, 0xab, 0xcd}, "3d"},
		{[]byte{0x30, 0xab, 0xcd, 0x31}, "01"},
	} {
		a, b := ja4ALPN(c.in)
		if string([]byte{a, b}) != c.want {
			t.Errorf("ja4ALPN(% x) = %c%c, spec %s", c.in, a, b, c.want)
		}
	}
}

// TestSplitClientHello feeds ClientHellos cut at every byte into two
// segments (and over three records): with a pool the result must equal the
// unsplit parse; a retransmitted first segment changes nothing; without a
// pool the name still comes through when the first segment holds it.
func TestSplitClientHello(t *testing.T) {
	hellos := [][]byte{records(specHello(), 16384), records(specHello(), 100)}
	hellos = append(hellos, corpusClientHellos(t)...)
	for hi, h := range hellos {
		whole := string(run(NewPool(1), 6, 50000, 443, seg{true, string(h)}).AppendJSON(nil))
		if !strings.Contains(whole, `"ja3"`) {
			t.Fatalf("hello %d: no fingerprint when whole: %s", hi, whole)
		}
		for cut := 1; cut < len(h); cut++ {
			p := NewPool(1)
			got := string(run(p, 6, 50000, 443, seg{true, string(h[:cut])}, seg{false, ""}, seg{true, string(h[:cut])}, seg{true, string(h[cut:])}).AppendJSON(nil))
			if got != whole && !(cut < 6) {
				t.Fatalf("hello %d cut at %d: %s, whole %s", hi, cut, got, whole)
			}
			if p.Free() != 1 {
				t.Fatalf("hello %d cut at %d: slot not given back", hi, cut)
			}
			np := run(nil, 6, 50000, 443, seg{true, string(h[:cut])}, seg{true, string(h[cut:])})
			if cut >= len(h)-5 && cut > 5 && !strings.Contains(string(np.AppendJSON(nil)), `"sni"`) && strings.Contains(whole, `"sni"`) {
				t.Fatalf("hello %d cut at %d without pool lost the name: %s", hi, cut, np.AppendJSON(nil))
			}
		}
	}
}

// corpusClientHellos returns the first client payload of the TLS flows of
// two corpus captures, when the corpus is there.
func corpusClientHellos(t *testing.T) [][]byte {
	var out [][]byte
	for _, name := range []string{"ndpi-chrome.pcap", "ndpi-443-git.pcap"} {
		_ = readCapture(*corpusDir+"/"+name, func(link layers.LinkType, data []byte) {
			fr, ok := decodeFrame(link, data)
			if ok && fr.l4 == 6 && fr.dst.port == 443 && len(fr.payload) > 5 && fr.payload[0] == 22 && fr.payload[5] == 1 {
				out = append(out, bytes.Clone(fr.payload))
			}
		})
	}
	return out
}

func TestProtocols(t *testing.T) {
	type want map[string]any // "obj.key" -> value
	cases := []struct {
		name  string
		l4    uint8
		ports [2]uint16
		segs  []seg
		proto string
		guess bool
		want  want
	}{
		{"http split headers", 6, [2]uint16{40000, 8081}, []seg{
			{true, "GET /index.html?q=1 HTTP/1.1\r\nAccept: */*\r\nUser-Agent: curl/8.0\r\nHo"},
			{true, "st: Example.COM\r\n\r\n"},
			{false, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"},
		}, "HTTP", false, want{"http.method": "GET", "http.host": "Example.COM", "http.path": "/index.html?q=1", "http.user_agent": "curl/8.0", "http.status": 404.0}},
		{"http response only", 6, [2]uint16{40000, 80}, []seg{
			{false, "HTTP/1.0 200 OK\r\n\r\n"},
		}, "HTTP", false, want{"http.status": 200.0}},
		{"http connect then tls", 6, [2]uint16{40000, 3128}, []seg{
			{true, "CONNECT example.net:443 HTTP/1.1\r\nHost: example.net:443\r\n\r\n"},
			{false, "HTTP/1.1 200 Connection established\r\n\r\n"},
			{true, string(records(specHello(), 16384))},
		}, "HTTP", false, want{"http.host": "example.net:443", "tls.sni": "www.example.com"}},
		{"webdav method", 6, [2]uint16{40000, 8888}, []seg{
			{true, "PROPFIND /dav/ HTTP/1.1\r\nHost: dav.example\r\n\r\n"},
		}, "HTTP", false, want{"http.method": "PROPFIND", "http.host": "dav.example"}},
		{"rtsp is not http", 6, [2]uint16{40000, 8554}, []seg{
			{true, "OPTIONS rtsp://cam/ RTSP/1.0\r\nCSeq: 1\r\n\r\n"},
		}, "Unknown", false, want{}},
		{"http2 preface", 6, [2]uint16{40000, 8080}, []seg{{true, h2Preface}}, "HTTP2", false, want{}},
		{"smtp starttls", 6, [2]uint16{40000, 25}, []seg{
			{false, "220 mx.example.org ESMTP ready\r\n"},
			{true, "EHLO client.example\r\n"},
			{false, "250-mx.example.org\r\n250 STARTTLS\r\n"},
			{true, "STARTTLS\r\n"},
			{false, "220 2.0.0 go ahead\r\n"},
			{true, string(records(specHello(), 16384))},
		}, "SMTP", false, want{"smtp.banner": "220 mx.example.org ESMTP ready", "smtp.helo": "client.example", "smtp.starttls": true, "tls.sni": "www.example.com"}},
		{"ftp", 6, [2]uint16{40000, 2121}, []seg{
			{false, "220 ProFTPD Server (FTP) ready\r\n"},
			{true, "USER anonymous\r\n"},
		}, "FTP", false, want{"ftp.user": "anonymous"}},
		{"ambiguous 220 settled by USER", 6, [2]uint16{40000, 2222}, []seg{
			{false, "220 welcome\r\n"},
			{true, "USER bob\r\n"},
		}, "FTP", false, want{"ftp.user": "bob"}},
		{"pop3", 6, [2]uint16{40000, 110}, []seg{{false, "+OK POP3 ready\r\n"}, {true, "STLS\r\n"}}, "POP3", false, want{"pop3.starttls": true}},
		{"imap", 6, [2]uint16{40000, 143}, []seg{{false, "* OK IMAP4rev1 ready\r\n"}, {true, "a1 STARTTLS\r\n"}}, "IMAP", false, want{"imap.starttls": true}},
		{"ssh", 6, [2]uint16{40000, 22}, []seg{
			{false, "SSH-2.0-OpenSSH_9.6\r\n"}, {true, "SSH-2.0-PuTTY_0.80\r\n"},
		}, "SSH", false, want{"ssh.server": "SSH-2.0-OpenSSH_9.6", "ssh.client": "SSH-2.0-PuTTY_0.80"}},
		{"syn only guesses", 6, [2]uint16{40000, 22}, []seg{{true, ""}}, "SSH", true, want{}},
		{"bare syn to 443 is a guess", 6, [2]uint16{40000, 443}, []seg{{true, ""}}, "TLS", true, want{}},
		{"unanswered data to 443 stays a guess", 6, [2]uint16{40000, 443}, []seg{{true, "\x00\x01garbage"}}, "TLS", true, want{}},
		{"guess from the initiator's port when the server spoke first", 6, [2]uint16{53, 40000}, []seg{{true, ""}}, "DNS", true, want{}},
		{"dns over tcp", 6, [2]uint16{40000, 53}, []seg{
			{true, string(tcpDNS(dnsQuery(1, "a.example", 1), dnsQuery(2, "b.example", 28)))},
			{false, string(tcpDNS(dnsReply(1, "a.example", 1, 3, 0))[:1])},
			{false, string(tcpDNS(dnsReply(1, "a.example", 1, 3, 0))[1:])},
		}, "DNS", false, want{"dns.query": "a.example", "dns.qtype": "A", "dns.rcode": "NXDOMAIN", "dns.queries": 2.0, "dns.responses": 1.0}},
		{"dns over tcp, length in its own segment", 6, [2]uint16{40000, 53}, []seg{
			{true, string(tcpDNS(dnsQuery(1, "len.example", 1))[:2])},
			{true, string(tcpDNS(dnsQuery(1, "len.example", 1))[2:])},
		}, "DNS", false, want{"dns.query": "len.example", "dns.queries": 1.0}},
		{"dns names", 17, [2]uint16{40000, 53}, []seg{
			{true, string(dnsQuery(1, "one.example", 1))},
			{true, string(dnsQuery(2, "ONE.example", 28))},
			{true, string(dnsQuery(3, "two.example", 65))},
			{false, string(dnsReply(3, "two.example", 65, 0, 2))},
		}, "DNS", false, want{"dns.query": "one.example", "dns.answers": 2.0, "dns.queries": 3.0, "dns.rcode": "NOERROR"}},
		{"dns on an odd port", 17, [2]uint16{40000, 5300}, []seg{{true, string(dnsQuery(9, "odd.example", 16))}}, "DNS", false, want{"dns.qtype": "TXT"}},
		{"mdns", 17, [2]uint16{5353, 5353}, []seg{{true, string(dnsQuery(0, "_googlecast._tcp.local", 12))}}, "MDNS", false, want{"dns.query": "_googlecast._tcp.local"}},
		{"ntp", 17, [2]uint16{123, 123}, []seg{{true, "\x23" + strings.Repeat("\x00", 47)}}, "NTP", false, want{"ntp.version": 4.0, "ntp.mode": 3.0}},
		{"ssdp", 17, [2]uint16{50000, 1900}, []seg{{true, "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\n\r\n"}}, "SSDP", false, want{"ssdp.host": "239.255.255.250:1900", "ssdp.method": "M-SEARCH"}},
		{"dhcp", 17, [2]uint16{68, 67}, []seg{{true, string(dhcpDiscover("laptop"))}}, "DHCP", false, want{"dhcp.type": "DISCOVER", "dhcp.hostname": "laptop"}},
		{"tls mid-stream", 6, [2]uint16{40000, 4433}, []seg{{false, "\x17\x03\x03\x00\x20" + strings.Repeat("x", 32)}}, "TLS", false, want{}},
		{"server hello picks 1.3", 6, [2]uint16{40000, 443}, []seg{
			{true, string(records(specHello(), 16384))},
			{false, string(records(serverHello(0x0304), 16384))},
		}, "TLS", false, want{"tls.version": "TLS 1.3", "tls.client_version": "TLS 1.2", "tls.record_version": "TLS 1.0"}},
		{"ssl2 client hello", 6, [2]uint16{40000, 443}, []seg{{true, "\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10" + strings.Repeat("\x01", 37)}}, "TLS", false, want{"tls.client_version": "SSL 2.0"}},
		{"proxy protocol before tls", 6, [2]uint16{40000, 8443}, []seg{
			{true, "PROXY TCP4 192.0.2.1 198.51.100.2 40000 443\r\n" + string(records(specHello(), 16384))},
		}, "TLS", false, want{"tls.sni": "www.example.com"}},
		{"dnscrypt certificate query on 443", 17, [2]uint16{40000, 443}, []seg{{true, string(dnsQuery(3, "2.dnscrypt-cert.example", 16))}}, "DNS", false, want{"dns.query": "2.dnscrypt-cert.example"}},
		{"unknown udp", 17, [2]uint16{40000, 40001}, []seg{{true, "hello"}}, "Unknown", false, want{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := NewPool(2)
			s := run(p, c.l4, c.ports[0], c.ports[1], c.segs...)
			m := jsonOf(t, s)
			if s.Proto.String() != c.proto || s.Guess != c.guess {
				t.Errorf("proto %s guess %v, want %s %v (%s)", s.Proto, s.Guess, c.proto, c.guess, s.AppendJSON(nil))
			}
			// A guess is marked "guess":true, and it is the only member.
			if g, ok := m["guess"]; (c.guess && (g != true || len(m) != 1)) || (!c.guess && ok) {
				t.Errorf("guess %v: JSON %s", c.guess, s.AppendJSON(nil))
			}
			for k, v := range c.want {
				if got := get(m, strings.Split(k, ".")...); got != v {
					t.Errorf("%s = %#v, want %#v (%s)", k, got, v, s.AppendJSON(nil))
				}
			}
			if p.Free() != 2 {
				t.Errorf("pool slot not given back")
			}
			// A reused state: Reset over a used one (every byte dirty)
			// detects the same, and CopyFrom into a dirty one reads the
			// same, though neither writes the arena past what is used.
			js, res := s.AppendJSON(nil), s.AppendResult(nil)
			dirty := func() *State {
				d := new(State)
				b := (*[unsafe.Sizeof(State{})]byte)(unsafe.Pointer(d))
				for i := range b {
					b[i] = 0xa5
				}
				return d
			}
			r := dirty()
			r.Reset()
			if *r != (State{arena: r.arena}) {
				t.Errorf("Reset left a field set")
			}
			runInto(r, p, c.l4, c.ports[0], c.ports[1], c.segs...)
			if got := r.AppendJSON(nil); string(got) != string(js) {
				t.Errorf("after Reset: %s, fresh: %s", got, js)
			}
			cp := dirty()
			cp.CopyFrom(s)
			if got := cp.AppendJSON(nil); string(got) != string(js) {
				t.Errorf("CopyFrom: %s, source: %s", got, js)
			}
			if got := cp.AppendResult(nil); string(got) != string(res) {
				t.Errorf("CopyFrom: result %x, source %x", got, res)
			}
		})
	}
}

func TestDNSNamesList(t *testing.T) {
	s := run(nil, 17, 40000, 53,
		seg{true, string(dnsQuery(1, "one.example", 1))},
		seg{true, string(dnsQuery(2, "two.example", 1))},
		seg{true, string(dnsQuery(3, "TWO.example", 1))},
		seg{true, string(dnsQuery(4, ".", 2))})
	names, _ := get(jsonOf(t, s), "dns", "names").([]any)
	if len(names) != 2 || names[0] != "two.example" || names[1] != "<Root>" {
		t.Fatalf("names %v", names)
	}
	if s.Done() {
		t.Fatal("a DNS flow is never done: every message counts")
	}
}

// TestDNSNameText checks names against the text tshark 4.0.17 prints for
// them (dns.qry.name of crafted queries: control characters escaped, the
// marker strings for the root, over-long names, loops and extended labels).
func TestDNSNameText(t *testing.T) {
	long := func(total int) string { // labels of 63 'a's, text length total
		var b []byte
		for rem := total; rem > 0; rem -= 64 {
			l := min(63, rem)
			b = append(b, byte(l))
			b = append(b, bytes.Repeat([]byte{'a'}, l)...)
		}
		return string(append(b, 0))
	}
	for _, c := range []struct {
		wire, want string
		ok         bool
	}{
		{"\x03a b\x03com\x00", "a b.com", true},
		{"\x03a.b\x03com\x00", "a.b.com", true},
		{"\x03a\\b\x03com\x00", `a\b.com`, true},
		{"\x03a\x01b\x03com\x00", `a\001b.com`, true},
		{"\x03a\x7fb\x03com\x00", `a\177b.com`, true},
		{"\x03a\tb\x03com\x00", `a\tb.com`, true},
		{"\x05caf\xc3\xa9\x03com\x00", "café.com", true},
		{"\x01\x00\x00", `\000`, true},
		{"\x02\x00\x07\x00", `\000\a`, true},
		{"\x05a\x08\x0a\x0d\x1b\x00", `a\b\n\r\033`, true},
		{"\x00", "<Root>", true},
		{"\x03abc\x42\x00", "<Unknown extended label>", true},
		{"\x42abc\x00", "", false},
		{"\x03abc\x81\x00", "", false},
		{"\x03abc\x05de", "", false},
		{long(253), strings.Repeat("a", 63) + "." + strings.Repeat("a", 63) + "." + strings.Repeat("a", 63) + "." + strings.Repeat("a", 61), true},
		{long(254), "<Name too long>", true},
		{"\x03abc\xc0\x0c", "<Name contains a pointer that loops>", true},
	} {
		msg := append(u16s(1, 0x0100, 1, 0, 0, 0), c.wire...)
		var out nameBuf
		n, _, ok := dnsName(msg, 12, &out)
		var text string // as AppendJSON shows it
		if err := json.Unmarshal(appendJSONString(nil, out[:n]), &text); err != nil {
			t.Fatal(err)
		}
		if ok != c.ok || text != c.want {
			t.Errorf("% x: %q %v, tshark %q %v", c.wire, text, ok, c.want, c.ok)
		}
	}
}

// TestNamesFull: a flow with more names than room asks to be recorded,
// and ClearNames makes room again without losing the first name.
func TestNamesFull(t *testing.T) {
	var s State
	seen := map[string]bool{}
	for i := range 40 {
		name := strings.Repeat("x", 60) + "." + string(rune('a'+i%26)) + string(rune('a'+i/26)) + ".example"
		s.Feed(nil, dnsQuery(uint16(i), name, 1), true, 17, 40000, 53)
		seen[name] = false
		if s.NamesFull() || i == 39 {
			m := jsonOf(t, &s)
			seen[get(m, "dns", "query").(string)] = true
			names, _ := get(m, "dns", "names").([]any)
			for _, n := range names {
				seen[n.(string)] = true
			}
			s.ClearNames()
		}
	}
	for n, ok := range seen {
		if !ok {
			t.Errorf("name %s never recorded", n)
		}
	}
	if q := get(jsonOf(t, &s), "dns", "queries"); q != 40.0 {
		t.Errorf("queries %v", q)
	}
}

// TestMDNSManyQuestions: an mDNS browse asks for many services at once;
// the shared suffixes let all of them fit.
func TestMDNSManyQuestions(t *testing.T) {
	var services []string
	for _, s := range []string{"adisk", "airplay", "raop", "ipp", "ipps", "ippusb", "printer", "pdl-datastream", "scanner", "uscan", "uscans", "ptp", "rfb", "smb", "afpovertcp", "sftp-ssh", "companion-link"} {
		services = append(services, "_"+s+"._tcp.local")
	}
	msg := u16s(0, 0, uint16(len(services)), 0, 0, 0)
	for _, n := range services {
		msg = append(msg, dnsWire(n)...)
		msg = append(msg, u16s(12, 1)...)
	}
	s := run(nil, 17, 5353, 5353, seg{true, string(msg)})
	m := jsonOf(t, s)
	got := map[string]bool{get(m, "dns", "query").(string): true}
	names, _ := get(m, "dns", "names").([]any)
	for _, n := range names {
		got[n.(string)] = true
	}
	for _, n := range services {
		if !got[n] {
			t.Errorf("%s missing from %s", n, s.AppendJSON(nil))
		}
	}
}

func TestJSONEscaping(t *testing.T) {
	s := run(nil, 6, 40000, 80, seg{true, "GET /\"q\\\x01\xff\xe2\x82\xac HTTP/1.1\r\nHost: h\"ost\r\n\r\n"})
	js := s.AppendJSON(nil)
	if !json.Valid(js) {
		t.Fatalf("invalid JSON %q", js)
	}
	m := jsonOf(t, s)
	if got := get(m, "http", "path"); got != `/"q\\001`+"\ufffd€" {
		t.Errorf("path %q", got)
	}
	// Invalid UTF-8 as tshark 4.0.17 prints it (dns.qry.name of crafted
	// labels): one U+FFFD per cut sequence, surrogate or value past
	// U+10FFFF, per stray byte; over-long forms decoded.
	for in, want := range map[string]string{
		"a\xe2\x82b": "a\ufffdb", "a\xe2b": "a\ufffdb", "a\xf0\x9f\x98b": "a\ufffdb", "a\xc3b": "a\ufffdb",
		"a\xed\xa0\x80b": "a\ufffdb", "a\xc0\xafb": "a/b", "a\xf4\x90\x80\x80b": "a\ufffdb",
		"a\xe2\x82\xacb": "a€b", "\xbd\xc2": "\ufffd\ufffd", "bad\xff\xfe": "bad\ufffd\ufffd",
		"n\xfb\xbdQ": "n\ufffdQ", // from ndpi dns-tunnel-iodine.pcap frame 69
	} {
		var got string
		if err := json.Unmarshal(appendJSONString(nil, []byte(in)), &got); err != nil || got != want {
			t.Errorf("%q: %q %v, tshark %q", in, got, err, want)
		}
	}
	if string(new(State).AppendJSON([]byte("x"))) != "x{}" {
		t.Errorf("empty state: %s", new(State).AppendJSON(nil))
	}
}

// TestPoolSteal: with more pending flows than slots, the pool takes a slot
// back; the loser goes on with what its first packet showed.
func TestPoolSteal(t *testing.T) {
	p := NewPool(1)
	h := records(specHello(), 16384)
	var a, b State
	a.Feed(p, h[:100], true, 6, 1000, 443)
	b.Feed(p, h[:100], true, 6, 1001, 443)
	a.Feed(p, h[100:], true, 6, 1000, 443)
	b.Feed(p, h[100:], true, 6, 1001, 443)
	a.Release(p)
	b.Release(p)
	if p.Steals != 1 || p.Free() != 1 {
		t.Fatalf("steals %d free %d", p.Steals, p.Free())
	}
	if !strings.Contains(string(b.AppendJSON(nil)), `"ja4"`) {
		t.Errorf("the flow that kept the slot lost its hello: %s", b.AppendJSON(nil))
	}
	if a.flags&flHello == 0 {
		t.Errorf("the robbed flow still waits")
	}
}

func TestDoneBounds(t *testing.T) {
	var s State
	for i := 0; i < 3*MaxPackets+2; i++ {
		s.Feed(nil, []byte("noise"), i%2 == 0, 6, 40000, 40001)
	}
	if !s.Done() {
		t.Fatal("not done after the packet budget")
	}
	var h State
	h.Feed(nil, []byte("SSH-2.0-a\r\n"), true, 6, 40000, 22)
	h.Feed(nil, []byte("SSH-2.0-b\r\n"), false, 6, 22, 40000)
	if !h.Done() {
		t.Fatal("SSH not done after both banners")
	}
}

// TestHTTPKeepAliveHosts: later requests of a connection (through a proxy)
// may name other hosts; each distinct one is kept.
func TestHTTPKeepAliveHosts(t *testing.T) {
	var segs []seg
	for _, h := range []string{"a.example", "b.example", "A.EXAMPLE", "c.example"} {
		segs = append(segs, seg{true, "GET http://" + h + "/ HTTP/1.1\r\nHost: " + h + "\r\n\r\n"}, seg{false, "HTTP/1.1 200 OK\r\n\r\n"})
	}
	m := jsonOf(t, run(nil, 6, 40000, 3128, segs...))
	hosts, _ := get(m, "http", "hosts").([]any)
	if get(m, "http", "host") != "a.example" || len(hosts) != 2 || hosts[0] != "b.example" || hosts[1] != "c.example" {
		t.Fatalf("%v", m)
	}
}

func dnsQuery(id uint16, name string, qtype uint16) []byte {
	b := u16s(id, 0x0100, 1, 0, 0, 0)
	b = append(b, dnsWire(name)...)
	return append(b, u16s(qtype, 1)...)
}

func dnsReply(id uint16, name string, qtype uint16, rcode uint16, answers uint16) []byte {
	b := u16s(id, 0x8180|rcode, 1, answers, 0, 0)
	b = append(b, dnsWire(name)...)
	b = append(b, u16s(qtype, 1)...)
	for range answers {
		b = append(b, 0xc0, 12)
		b = append(b, u16s(qtype, 1, 0, 60, 4)...)
		b = append(b, 192, 0, 2, 1)
	}
	return b
}

func dnsWire(name string) []byte {
	var b []byte
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if l != "" {
			b = append(b, vec8([]byte(l))...)
		}
	}
	return append(b, 0)
}

func tcpDNS(msgs ...[]byte) []byte {
	var b []byte
	for _, m := range msgs {
		b = append(b, vec16(m)...)
	}
	return b
}

func serverHello(version uint16) []byte {
	body := u16s(0x0303)
	body = append(body, make([]byte, 32)...)
	body = append(body, 0)
	body = append(body, u16s(0x1301)...)
	body = append(body, 0)
	body = append(body, vec16(append(u16s(0x002b, 2), u16s(version)...))...)
	return append([]byte{2, 0, byte(len(body) >> 8), byte(len(body))}, body...)
}

func dhcpDiscover(host string) []byte {
	b := make([]byte, 240)
	b[0], b[1], b[2] = 1, 1, 6
	binary.BigEndian.PutUint32(b[236:], 0x63825363)
	b = append(b, 53, 1, 1)
	b = append(b, 12, byte(len(host)))
	b = append(b, host...)
	return append(b, 255)
}

// TestPortName: PortName is what a State fed one empty payload shows, for
// every port pair that matters (each well-known port against an ephemeral
// one and against each other, both ways) on TCP, UDP and others.
func TestPortName(t *testing.T) {
	ports := []uint16{0, 1, 40000, 65535}
	for p := range 65536 {
		if portGuess(6, uint16(p)) != Unknown || portGuess(17, uint16(p)) != Unknown {
			ports = append(ports, uint16(p))
		}
	}
	for _, l4 := range []uint8{0, 1, 6, 17, 132} {
		for _, a := range ports {
			for _, b := range ports {
				var s State
				s.Feed(nil, nil, true, l4, a, b)
				name, guess := PortName(l4, a, b)
				if name != s.Name() || guess != s.Guess {
					t.Fatalf("PortName(%d, %d, %d) = %q, %v; a State shows %q, %v", l4, a, b, name, guess, s.Name(), s.Guess)
				}
			}
		}
	}
}

// TestNameID: NameID tells States apart exactly as Name does.
func TestNameID(t *testing.T) {
	type sample struct {
		id   int
		name string
	}
	var all []sample
	for p := range 256 {
		for _, ports := range [][2]uint16{{40000, 443}, {443, 40000}, {40000, 80}, {40000, 993}, {1, 2}} {
			for _, l4 := range []uint8{6, 17} {
				var s State
				s.Feed(nil, nil, true, l4, ports[0], ports[1])
				s.Proto = Proto(p)
				id := s.NameID()
				if id < 0 || id >= NameIDs {
					t.Fatalf("Proto %d ports %v: NameID %d out of range", p, ports, id)
				}
				all = append(all, sample{id, s.Name()})
			}
		}
	}
	for _, a := range all {
		for _, b := range all {
			if (a.id == b.id) != (a.name == b.name) {
				t.Fatalf("NameID %d for %q, %d for %q", a.id, a.name, b.id, b.name)
			}
		}
	}
}
