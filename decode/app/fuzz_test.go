package app

import (
	"encoding/json"
	"path/filepath"
	"testing"
)

// fuzzFlow feeds data as a flow cut into two client segments at cut, then
// as a server reply, and checks the invariants every input must keep: no
// panic, valid JSON, the reassembly slot given back.
func fuzzFlow(t *testing.T, l4 uint8, cport, sport uint16, data []byte, cut uint16) {
	p := NewPool(1)
	var s State
	c := min(int(cut), len(data))
	s.Feed(p, nil, true, l4, cport, sport)
	s.Feed(p, data[:c], true, l4, cport, sport)
	s.Feed(p, data[c:], true, l4, cport, sport)
	s.Feed(p, data, false, l4, sport, cport)
	s.Release(p)
	if js := s.AppendJSON(nil); !json.Valid(js) {
		t.Fatalf("invalid JSON %q", js)
	}
	if p.Free() != 1 {
		t.Fatal("slot not given back")
	}
	// The same bytes as the server's first words.
	var r State
	r.Feed(p, data, false, l4, sport, cport)
	r.Feed(p, data, true, l4, cport, sport)
	r.Release(p)
	if js := r.AppendJSON(nil); !json.Valid(js) {
		t.Fatalf("invalid JSON %q", js)
	}
}

func FuzzTLS(f *testing.F) {
	f.Add(records(specHello(), 16384), uint16(100))
	f.Add(records(specHello(), 50), uint16(7))
	f.Add(records(serverHello(0x0304), 16384), uint16(3))
	f.Add([]byte("\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10"), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		fuzzFlow(t, 6, 50000, 443, data, cut)
		var h hello
		h.parse(data)
	})
}

func FuzzHTTP(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: x\r\n\r\n"), uint16(20))
	f.Add([]byte("HTTP/1.1 200 OK\r\n\r\n"), uint16(0))
	f.Add([]byte("CONNECT a:443 HTTP/1.1\r\n\r\n\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00"), uint16(26))
	f.Add([]byte(h2Preface), uint16(5))
	f.Add([]byte("NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\r\n"), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		fuzzFlow(t, 6, 50000, 80, data, cut)
		fuzzFlow(t, 17, 50000, 1900, data, cut)
	})
}

func FuzzDNS(f *testing.F) {
	f.Add(dnsQuery(1, "www.example.com", 1), uint16(5))
	f.Add(dnsReply(1, "example.org", 28, 3, 2), uint16(0))
	f.Add(tcpDNS(dnsQuery(1, "a.b", 1), dnsQuery(2, "c.d", 65)), uint16(1))
	f.Add([]byte("\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01"), uint16(0)) // pointer loop
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		fuzzFlow(t, 17, 50000, 53, data, cut)
		fuzzFlow(t, 6, 50000, 53, data, cut)
		fuzzFlow(t, 17, 5353, 5353, data, cut)
		fuzzFlow(t, 17, 50000, 5300, data, cut)
	})
}

func FuzzQUIC(f *testing.F) {
	for _, name := range []string{"rfc9001-a2-client-initial.hex", "rfc9369-a2-client-initial.hex"} {
		f.Add(readHex(f, filepath.Join("testdata", name)), uint16(0))
	}
	f.Add([]byte("\x0d\x01\x02\x03\x04\x05\x06\x07\x08Q046\x01CHLO\x02\x00\x00\x00SNI\x00\x03\x00\x00\x00UAID\x04\x00\x00\x00abcdefg"), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		fuzzFlow(t, 17, 50000, 443, data, cut)
		var s State
		p := NewPool(1)
		s.quicFrames(p, data, 0, []byte{1, 2, 3, 4}, 0x06)
		s.quicFrames(p, data, 0, []byte{1, 2, 3, 4}, 0x08)
		s.Release(p)
		s.gquicCHLO(data)
	})
}

func FuzzText(f *testing.F) {
	f.Add([]byte("SSH-2.0-OpenSSH_9.6\r\n"), uint16(4))
	f.Add([]byte("220 mail ESMTP\r\nEHLO x\r\nSTARTTLS\r\n"), uint16(16))
	f.Add([]byte("220 FTP ready\r\nUSER anonymous\r\nAUTH TLS\r\n"), uint16(15))
	f.Add([]byte("+OK\r\nSTLS\r\n"), uint16(5))
	f.Add([]byte("* OK\r\na STARTTLS\r\n"), uint16(6))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		fuzzFlow(t, 6, 50000, 22, data, cut)
		fuzzFlow(t, 6, 50000, 25, data, cut)
		fuzzFlow(t, 6, 50000, 21, data, cut)
		fuzzFlow(t, 6, 50000, 110, data, cut)
		fuzzFlow(t, 17, 68, 67, data, cut)
		fuzzFlow(t, 17, 123, 123, data, cut)
	})
}
