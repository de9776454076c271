package app

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"unsafe"
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

// refAppendResult is AppendResult as it was written first, a field at a
// time: the format's reference.
func refAppendResult(s *State, b []byte) []byte {
	if *s == (State{}) {
		return append(b, 0)
	}
	g := byte(0)
	if s.Guess {
		g = 1
	}
	le := binary.LittleEndian
	b = append(b, 1, byte(s.Proto), g, s.l4, s.cli, s.pkts[0], s.pkts[1])
	b = le.AppendUint16(b, s.ports[0])
	b = le.AppendUint16(b, s.ports[1])
	b = le.AppendUint32(b, s.flags)
	b = le.AppendUint16(b, s.status)
	b = le.AppendUint16(b, s.qtype)
	b = le.AppendUint16(b, s.answers)
	b = append(b, s.rcode, s.names)
	b = le.AppendUint16(b, s.nameOff)
	b = le.AppendUint32(b, s.queries)
	b = le.AppendUint32(b, s.replies)
	b = append(b, s.msgType, s.msgVer)
	b = le.AppendUint16(b, s.tlsRec)
	b = le.AppendUint16(b, s.tlsCli)
	b = le.AppendUint16(b, s.tlsMax)
	b = le.AppendUint16(b, s.tlsSrv)
	b = le.AppendUint32(b, s.quicVer)
	b = append(b, s.ja3[:]...)
	for _, o := range s.soff {
		b = le.AppendUint16(b, o)
	}
	b = append(b, s.slen[:]...)
	b = le.AppendUint16(b, s.used)
	return append(b, s.arena[:s.used]...)
}

// TestAppendResultFormat: AppendResult writes the bytes of the reference
// coder, for detected States and for States whose every head byte is
// random (each field at its place), after a prefix.
func TestAppendResultFormat(t *testing.T) {
	states := resultStates()
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		var s State
		h := (*[headBytes]byte)(unsafe.Pointer(&s))
		for i := range h {
			h[i] = byte(r.Uint32())
		}
		s.Guess = r.IntN(2) == 1
		s.used = uint16(r.IntN(arenaSize + 1))
		for i := range s.arena[:s.used] {
			s.arena[i] = byte(r.Uint32())
		}
		states = append(states, s)
	}
	for i := range states {
		s := &states[i]
		for _, pre := range [][]byte{nil, []byte("prefix"), make([]byte, 3, 600)} {
			want := refAppendResult(s, append([]byte(nil), pre...))
			if got := s.AppendResult(append([]byte(nil), pre...)); !bytes.Equal(got, want) {
				t.Fatalf("state %d: %x\nwant %x", i, got, want)
			}
			if got := s.AppendResult(pre); !bytes.Equal(got, want) {
				t.Fatalf("state %d, in place: %x\nwant %x", i, got, want)
			}
		}
	}
}
