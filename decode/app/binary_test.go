package app

import (
	"bytes"
	"encoding/json"
	"testing"
)

// resultStates returns States made by real detection: an HTTP request with
// several hosts, a DNS flow with many names, a TLS ClientHello, a guess.
func resultStates() []State {
	var out []State
	feed := func(l4 uint8, cport, sport uint16, msgs ...[]byte) {
		p := NewPool(1)
		var s State
		s.Feed(p, nil, true, l4, cport, sport)
		for _, m := range msgs {
			s.Feed(p, m, true, l4, cport, sport)
		}
		s.Release(p)
		out = append(out, s)
	}
	feed(6, 50000, 80, []byte("GET /a HTTP/1.1\r\nHost: one.example\r\nUser-Agent: t\r\n\r\n"),
		[]byte("GET /b HTTP/1.1\r\nHost: two.example\r\n\r\n"))
	feed(6, 50000, 443, records(specHello(), 16384))
	feed(6, 50000, 443)
	feed(17, 5353, 5353)
	return append(out, State{})
}

// TestResultRoundTrip checks that DecodeResult gives back a State equal to
// the one AppendResult wrote, with the same JSON, and consumes exactly its
// bytes.
func TestResultRoundTrip(t *testing.T) {
	for i, s := range resultStates() {
		b := s.AppendResult(nil)
		b = append(b, 0xAB)
		var got State
		rest, err := got.DecodeResult(b)
		if err != nil {
			t.Fatalf("state %d: %v", i, err)
		}
		if !bytes.Equal(rest, []byte{0xAB}) {
			t.Fatalf("state %d: rest %x", i, rest)
		}
		if got != s {
			t.Fatalf("state %d: decoded state differs", i)
		}
		if a, b := got.AppendJSON(nil), s.AppendJSON(nil); !bytes.Equal(a, b) {
			t.Fatalf("state %d: JSON %s, want %s", i, a, b)
		}
	}
}

// FuzzDecodeResult checks that garbage never panics and that whatever
// decodes renders valid JSON and encodes back to the bytes it came from.
func FuzzDecodeResult(f *testing.F) {
	for _, s := range resultStates() {
		f.Add(s.AppendResult(nil))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s State
		rest, err := s.DecodeResult(b)
		if err != nil {
			if s != (State{}) {
				t.Fatal("error left a non-zero State")
			}
			return
		}
		if js := s.AppendJSON(nil); !json.Valid(js) {
			t.Fatalf("invalid JSON %q", js)
		}
		_ = s.Name()
		_ = s.Done()
		if s.Proto.isDNSFamily() || s.Proto == HTTP {
			_ = s.NamesFull()
		}
		enc := s.AppendResult(nil)
		if n := len(b) - len(rest); !bytes.Equal(enc, b[:n]) && !(b[0] == 1 && s == State{}) {
			t.Fatalf("re-encoded %x, read %x", enc, b[:n])
		}
	})
}
