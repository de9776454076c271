package ipfix

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netsentry/netsentry/decode"
	"github.com/netsentry/netsentry/flowtable"
)

func addr4(a, b, c, d byte) decode.Addr { return decode.Addr{a, b, c, d} }

func testRecords(n int) []flowtable.Record {
	var recs []flowtable.Record
	for i := range n {
		r := flowtable.Record{Src: addr4(10, 0, 0, byte(i)), Dst: addr4(192, 0, 2, 1), SrcPort: uint16(40000 + i), DstPort: 443,
			Proto: 6, IPVersion: 4, VLAN: 42, End: flowtable.EndFin, FlagsTx: 0x1b, FlagsRx: 0x12,
			PacketsTx: uint64(i + 1), PacketsRx: uint64(2*i + 1), BytesTx: uint64(100 * (i + 1)), BytesRx: uint64(1000 * (i + 1)),
			IPBytesTx: uint64(86 * (i + 1)), IPBytesRx: uint64(958*(i+1) + 3),
			First: 1_700_000_000_123_456_789, Last: 1_700_000_005_987_654_321, AppLabel: "HTTPS"}
		if i%3 == 1 {
			r.IPVersion = 6
			r.Src = decode.Addr{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)}
			r.Dst = decode.Addr{0x20, 0x01, 0x0d, 0xb8, 15: 0xff}
			r.Proto, r.End, r.AppLabel = 17, flowtable.EndIdle, "DNS"
		}
		recs = append(recs, r)
	}
	return recs
}

// check compares a decoded data record with the flow record it came from.
func check(t *testing.T, got *Record, want *flowtable.Record) {
	t.Helper()
	alen := 4
	sid, did := uint16(ieSourceIPv4Address), uint16(ieDestinationIPv4Address)
	if want.IPVersion == 6 {
		alen, sid, did = 16, ieSourceIPv6Address, ieDestinationIPv6Address
	}
	if src, _ := got.Get(0, sid); !bytes.Equal(src, want.Src[:alen]) {
		t.Errorf("src %x, want %x", src, want.Src[:alen])
	}
	if dst, _ := got.Get(0, did); !bytes.Equal(dst, want.Dst[:alen]) {
		t.Errorf("dst %x, want %x", dst, want.Dst[:alen])
	}
	for _, c := range []struct {
		pen  uint32
		id   uint16
		want uint64
	}{
		{0, ieSourceTransportPort, uint64(want.SrcPort)}, {0, ieDestinationTransport, uint64(want.DstPort)},
		{0, ieProtocolIdentifier, uint64(want.Proto)}, {0, ieVlanID, uint64(want.VLAN)},
		{0, iePacketDeltaCount, want.PacketsTx}, {ReversePEN, iePacketDeltaCount, want.PacketsRx},
		{0, ieLayer2OctetDeltaCount, want.BytesTx}, {ReversePEN, ieLayer2OctetDeltaCount, want.BytesRx},
		{0, ieOctetDeltaCount, want.IPBytesTx}, {ReversePEN, ieOctetDeltaCount, want.IPBytesRx},
		{0, ieFlowStartMilliseconds, uint64(want.First / 1e6)}, {0, ieFlowEndMilliseconds, uint64(want.Last / 1e6)},
		{0, ieFlowEndReason, uint64(EndReason(want.End))}, {0, ieBiflowDirection, 1},
	} {
		if v, ok := got.Uint(c.pen, c.id); !ok || v != c.want {
			t.Errorf("element %d/%d = %d (%v), want %d", c.pen, c.id, v, ok, c.want)
		}
	}
	if want.Proto == 6 {
		if v, _ := got.Uint(0, ieTCPControlBits); v != uint64(want.FlagsTx) {
			t.Errorf("tcpControlBits %#x, want %#x", v, want.FlagsTx)
		}
		if v, _ := got.Uint(ReversePEN, ieTCPControlBits); v != uint64(want.FlagsRx) {
			t.Errorf("reverse tcpControlBits %#x, want %#x", v, want.FlagsRx)
		}
	}
	if app, _ := got.Get(0, ieApplicationName); string(app) != want.AppName() {
		t.Errorf("applicationName %q, want %q", app, want.AppName())
	}
}

// TestEncodeDecode encodes flows into messages of at most MaxUDPMessage
// bytes and decodes them back: every field, sequence numbers counting
// data records, the message length in the header.
func TestEncodeDecode(t *testing.T) {
	recs := testRecords(100)
	e := newEncoder(7, MaxUDPMessage)
	d := NewDecoder()
	var got []Record
	var seqs []uint32
	flush := func() {
		msg := e.finish()
		if len(msg) > MaxUDPMessage {
			t.Fatalf("message of %d bytes, more than %d", len(msg), MaxUDPMessage)
		}
		m, err := d.Decode(msg)
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.ODID != 7 || int(m.Header.Length) != len(msg) {
			t.Fatalf("header %+v for %d bytes", m.Header, len(msg))
		}
		if m.Unknown != 0 {
			t.Fatalf("%d data sets with unknown templates", m.Unknown)
		}
		seqs = append(seqs, m.Header.Seq)
		if int(m.Header.Seq) != len(got) {
			t.Fatalf("sequence %d after %d records", m.Header.Seq, len(got))
		}
		got = append(got, m.Records...)
	}
	e.begin(1_800_000_000)
	e.templates()
	for i := range recs {
		n, id := recordLen(&recs[i], []byte(recs[i].AppName()), nil)
		if !e.fits(n, id) {
			flush()
			e.begin(1_800_000_000)
		}
		e.record(&recs[i], id, []byte(recs[i].AppName()), nil)
	}
	flush()
	if len(got) != len(recs) || len(seqs) < 2 {
		t.Fatalf("%d records in %d messages, want %d in several", len(got), len(seqs), len(recs))
	}
	for i := range recs {
		check(t, &got[i], &recs[i])
	}
}

// TestLongString: a string of 255 bytes or more takes the three-byte length.
func TestLongString(t *testing.T) {
	r := testRecords(1)[0]
	r.AppLabel = strings.Repeat("x", 300)
	e := newEncoder(1, MaxTCPMessage)
	e.begin(0)
	e.templates()
	n, id := recordLen(&r, []byte(r.AppLabel), []byte("example.com"))
	e.record(&r, id, []byte(r.AppLabel), []byte("example.com"))
	msg := e.finish()
	if want := HeaderLen + templatesLen() + SetHeaderLen + n; len(msg) != want {
		t.Fatalf("message %d bytes, want %d", len(msg), want)
	}
	m, err := NewDecoder().Decode(msg)
	if err != nil || len(m.Records) != 1 {
		t.Fatalf("%v, %d records", err, len(m.Records))
	}
	if app, _ := m.Records[0].Get(0, ieApplicationName); string(app) != r.AppLabel {
		t.Fatalf("applicationName of %d bytes, want %d", len(app), len(r.AppLabel))
	}
	if sn, _ := m.Records[0].Get(ServerNamePEN, ServerNameID); string(sn) != "example.com" {
		t.Fatalf("serverName %q", sn)
	}
}

func TestDecodeErrors(t *testing.T) {
	r := testRecords(1)
	e := newEncoder(1, MaxUDPMessage)
	e.begin(0)
	e.templates()
	e.record(&r[0], TemplateIPv4, []byte("HTTPS"), nil)
	good := append([]byte(nil), e.finish()...)
	if _, err := NewDecoder().Decode(good[:10]); !errors.Is(err, ErrShort) {
		t.Errorf("10 bytes: %v", err)
	}
	if _, err := NewDecoder().Decode(good[:len(good)-1]); !errors.Is(err, ErrShort) {
		t.Errorf("cut message: %v", err)
	}
	bad := append([]byte(nil), good...)
	binary.BigEndian.PutUint16(bad[HeaderLen+2:], 2) // template set of 2 bytes
	if _, err := NewDecoder().Decode(bad); err == nil {
		t.Error("set length 2 accepted")
	}
	bad = append([]byte(nil), good...)
	bad[0] = 9
	if _, err := NewDecoder().Decode(bad); err == nil {
		t.Error("version 9 accepted")
	}
	// Data before its template: counted as unknown, not decoded.
	e.begin(0)
	e.record(&r[0], TemplateIPv4, []byte("HTTPS"), nil)
	m, err := NewDecoder().Decode(e.finish())
	if err != nil || m.Unknown != 1 || len(m.Records) != 0 {
		t.Errorf("data without template: %v, %+v", err, m)
	}
}

func FuzzDecode(f *testing.F) {
	recs := testRecords(5)
	e := newEncoder(1, MaxUDPMessage)
	e.begin(0)
	e.templates()
	for i := range recs {
		_, id := recordLen(&recs[i], []byte("DNS"), []byte("example.org"))
		e.record(&recs[i], id, []byte("DNS"), []byte("example.org"))
	}
	f.Add(append([]byte(nil), e.finish()...))
	e.begin(0)
	e.templates()
	f.Add(append([]byte(nil), e.finish()...))
	f.Add([]byte{0, 10, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := NewDecoder()
		m, err := d.Decode(b)
		if err != nil {
			return
		}
		if int(m.Header.Length) > len(b) {
			t.Fatalf("decoded a message of %d bytes from %d", m.Header.Length, len(b))
		}
		for _, r := range m.Records {
			n := 0
			for _, v := range r.Values {
				n += len(v.Data)
			}
			if n > len(b) {
				t.Fatalf("record holds %d bytes of a %d-byte message", n, len(b))
			}
		}
		// The same bytes again decode the same way with the templates kept.
		if _, err := d.Decode(b); err != nil {
			t.Fatalf("second decode: %v", err)
		}
	})
}

// collector is a TCP IPFIX collector for the tests: it decodes every
// message of every connection it accepts.
type collector struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	msgs  [][]Message // per connection
}

func newCollector(t *testing.T, addr string) *collector {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{ln: ln}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			i := len(c.msgs)
			c.conns = append(c.conns, conn)
			c.msgs = append(c.msgs, nil)
			c.mu.Unlock()
			go c.read(conn, i)
		}
	}()
	return c
}

func (c *collector) read(conn net.Conn, i int) {
	d := NewDecoder()
	var buf []byte
	tmp := make([]byte, 65536)
	for {
		n, err := conn.Read(tmp)
		buf = append(buf, tmp[:n]...)
		for {
			l, lerr := MessageLen(buf)
			if lerr != nil || l > len(buf) {
				break
			}
			m, derr := d.Decode(buf[:l])
			if derr != nil {
				panic("collector: " + derr.Error())
			}
			c.mu.Lock()
			c.msgs[i] = append(c.msgs[i], m)
			c.mu.Unlock()
			buf = buf[l:]
		}
		if err != nil {
			return
		}
	}
}

func (c *collector) close() {
	c.ln.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
}

func (c *collector) records(conn int) (int, []Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if conn >= len(c.msgs) {
		return 0, nil
	}
	n := 0
	for _, m := range c.msgs[conn] {
		n += len(m.Records)
	}
	return n, append([]Message(nil), c.msgs[conn]...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTCPReconnect: templates open every connection and sequence numbers
// start at 0 on each; with the collector gone, records are dropped and
// counted without blocking, and the sender connects again once it is back.
func TestTCPReconnect(t *testing.T) {
	c := newCollector(t, "127.0.0.1:0")
	addr := c.ln.Addr().String()
	s, err := New(Options{Address: addr, Transport: "tcp", MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs := testRecords(300) // more than one 16 KiB message
	s.WriteFlows(recs)
	waitFor(t, "300 records", func() bool { n, _ := c.records(0); return n == 300 })
	_, msgs := c.records(0)
	if len(msgs[0].Templates) != 2 || msgs[0].Header.Seq != 0 || len(msgs) < 2 {
		t.Fatalf("first message: templates %v, seq %d; %d messages", msgs[0].Templates, msgs[0].Header.Seq, len(msgs))
	}
	for _, m := range msgs[1:] {
		if len(m.Templates) != 0 {
			t.Fatal("templates sent twice on one TCP connection")
		}
	}
	var all []Record
	for _, m := range msgs {
		all = append(all, m.Records...)
	}
	for i := range recs {
		check(t, &all[i], &recs[i])
	}

	// The collector goes away: writes return at once, records are dropped.
	c.close()
	waitFor(t, "the sender to see the connection end", func() bool { return s.dead.Load() })
	start := time.Now()
	for range 20 {
		s.WriteFlows(recs[:10])
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("20 writes to a dead collector took %v", el)
	}
	st := s.Stats()
	if st.Dropped != 200 || st.Connected {
		t.Fatalf("with the collector down: %+v", st)
	}

	// It comes back on the same address.
	c2 := newCollector(t, addr)
	defer c2.close()
	waitFor(t, "a new connection", func() bool {
		s.WriteFlows(recs[:5])
		n, _ := c2.records(0)
		return n > 0
	})
	_, msgs = c2.records(0)
	if len(msgs[0].Templates) != 2 || msgs[0].Header.Seq != 0 {
		t.Fatalf("first message after reconnecting: templates %v, seq %d", msgs[0].Templates, msgs[0].Header.Seq)
	}
	if st := s.Stats(); st.Connects != 2 || !st.Connected || st.Records < 305 {
		t.Fatalf("after reconnecting: %+v", st)
	}
}

// TestUDPTemplatesAndSize: UDP messages stay within MaxUDPMessage, the
// first carries the templates, and they come again after the refresh
// interval; a collector that is not there costs nothing but counters.
func TestUDPTemplatesAndSize(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s, err := New(Options{Address: pc.LocalAddr().String(), Transport: "udp", TemplateRefresh: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs := testRecords(200)
	s.WriteFlows(recs)
	time.Sleep(250 * time.Millisecond)
	s.WriteFlows(recs[:3])
	d := NewDecoder()
	buf := make([]byte, 65536)
	var got, tplMsgs int
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for got < 203 {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after %d records: %v", got, err)
		}
		if n > MaxUDPMessage {
			t.Fatalf("datagram of %d bytes", n)
		}
		m, err := d.Decode(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		if got == 0 && len(m.Templates) == 0 {
			t.Fatal("first message without templates")
		}
		if len(m.Templates) > 0 {
			tplMsgs++
		}
		if int(m.Header.Seq) != got {
			t.Fatalf("sequence %d after %d records", m.Header.Seq, got)
		}
		got += len(m.Records)
	}
	if tplMsgs != 2 {
		t.Fatalf("templates in %d messages, want 2 (start, refresh)", tplMsgs)
	}

	// No collector: sends fail (ICMP port unreachable) or vanish, fast.
	free, _ := net.ListenPacket("udp", "127.0.0.1:0")
	addr := free.LocalAddr().String()
	free.Close()
	s2, _ := New(Options{Address: addr, Transport: "udp"})
	defer s2.Close()
	start := time.Now()
	for range 50 {
		s2.WriteFlows(recs[:20])
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("50 sends to no collector took %v", el)
	}
	if st := s2.Stats(); st.Records+st.Dropped != 1000 {
		t.Fatalf("sent %d + dropped %d, want 1000", st.Records, st.Dropped)
	}
}

// TestTCPNoCollector: no listener at all; writes never wait longer than a
// dial, attempts back off.
func TestTCPNoCollector(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	s, _ := New(Options{Address: addr, Transport: "tcp"})
	defer s.Close()
	start := time.Now()
	for range 100 {
		s.WriteFlows(testRecords(3))
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("100 writes took %v", el)
	}
	st := s.Stats()
	if st.Dropped != 300 || st.Errors != 1 || st.Connected {
		t.Fatalf("%+v: want 300 dropped after one failed attempt (the backoff holds the rest)", st)
	}
}
