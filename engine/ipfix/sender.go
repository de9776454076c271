package ipfix

import (
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/netsentry/netsentry/flowtable"
)

// Defaults of Options.
const (
	// TemplateRefresh is how often templates are sent again over UDP.
	TemplateRefresh = 60 * time.Second
	// DialTimeout bounds one TCP connection attempt.
	DialTimeout = time.Second
	// WriteTimeout bounds one message's send.
	WriteTimeout = 2 * time.Second
	// MinBackoff and MaxBackoff bound the wait between TCP connection
	// attempts; it doubles after each failure.
	MinBackoff = 500 * time.Millisecond
	MaxBackoff = 30 * time.Second
	// ObservationDomain is the observation domain ID of every message.
	ObservationDomain = 1
)

// Options configure a Sender.
type Options struct {
	Address   string // host:port of the collector
	Transport string // "udp" or "tcp"
	Name      string // the sink's name in the exporter's counters; "" = "ipfix"
	// TemplateRefresh overrides the UDP template interval (tests); 0: TemplateRefresh.
	TemplateRefresh time.Duration
	// MinBackoff, MaxBackoff override the TCP reconnect backoff; 0: the defaults.
	MinBackoff, MaxBackoff time.Duration
}

// Stats are one collector's counters.
type Stats struct {
	Address, Transport string
	Messages           uint64 // messages sent
	Records            uint64 // data records sent
	Bytes              uint64 // message bytes sent
	Templates          uint64 // template sets sent
	Dropped            uint64 // records not sent: not connected, or the send failed
	Errors             uint64 // failed sends and connection attempts
	Connects           uint64 // TCP connections made (UDP: 1 once the socket is open)
	Connected          bool
}

// Sender sends flow records to one collector. It is an engine.Sink: the
// engine's exporter calls WriteFlows from one goroutine.
type Sender struct {
	opt     Options
	enc     *encoder
	conn    net.Conn
	dead    atomic.Bool // the TCP reader saw the connection end
	nextTry time.Time   // earliest next connection attempt
	backoff time.Duration
	lastTpl time.Time // when templates were last sent (UDP)
	newConn bool      // templates are due: a new TCP connection

	messages, records, bytes, templates, dropped, errs, connects atomic.Uint64
	connected                                                    atomic.Bool
}

// New returns a sender to opt.Address; it does not wait for the collector
// (a TCP connection is made with the first records, and again after a
// failure, with a backoff).
func New(opt Options) (*Sender, error) {
	switch opt.Transport {
	case "udp", "tcp":
	default:
		return nil, fmt.Errorf("ipfix: transport %q: want udp or tcp", opt.Transport)
	}
	if _, _, err := net.SplitHostPort(opt.Address); err != nil {
		return nil, fmt.Errorf("ipfix: address %q: %w", opt.Address, err)
	}
	if opt.Name == "" {
		opt.Name = "ipfix"
	}
	if opt.TemplateRefresh <= 0 {
		opt.TemplateRefresh = TemplateRefresh
	}
	if opt.MinBackoff <= 0 {
		opt.MinBackoff = MinBackoff
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = MaxBackoff
	}
	maxLen := MaxUDPMessage
	if opt.Transport == "tcp" {
		maxLen = MaxTCPMessage
	}
	return &Sender{opt: opt, enc: newEncoder(ObservationDomain, maxLen), backoff: opt.MinBackoff}, nil
}

// Name implements engine.Named.
func (s *Sender) Name() string { return s.opt.Name }

// Stats returns the counters; safe from any goroutine.
func (s *Sender) Stats() Stats {
	return Stats{Address: s.opt.Address, Transport: s.opt.Transport, Messages: s.messages.Load(),
		Records: s.records.Load(), Bytes: s.bytes.Load(), Templates: s.templates.Load(),
		Dropped: s.dropped.Load(), Errors: s.errs.Load(), Connects: s.connects.Load(),
		Connected: s.connected.Load()}
}

// connect makes sure there is a connection; false when there is none now.
func (s *Sender) connect(now time.Time) bool {
	if s.conn != nil && s.dead.Load() {
		s.disconnect(now)
	}
	if s.conn != nil {
		return true
	}
	if now.Before(s.nextTry) {
		return false
	}
	c, err := net.DialTimeout(s.opt.Transport, s.opt.Address, DialTimeout)
	if err != nil {
		s.errs.Add(1)
		s.nextTry = now.Add(s.backoff)
		s.backoff = min(2*s.backoff, s.opt.MaxBackoff)
		return false
	}
	s.conn, s.backoff = c, s.opt.MinBackoff
	s.connects.Add(1)
	s.connected.Store(true)
	if s.opt.Transport == "tcp" {
		// A new transport session: templates first, sequence numbers anew.
		s.newConn, s.enc.seq = true, 0
		s.dead.Store(false)
		go func() {
			// Collectors send nothing back; a read ends when the
			// connection does, which the next send then learns.
			io.Copy(io.Discard, c)
			s.dead.Store(true)
		}()
	}
	return true
}

func (s *Sender) disconnect(now time.Time) {
	if s.conn == nil {
		return
	}
	s.conn.Close()
	s.conn = nil
	s.connected.Store(false)
	if s.opt.Transport == "tcp" {
		s.nextTry = now // the first attempt after a loss is at once
	}
}

// WriteFlows implements engine.Sink: recs go out in as many messages as
// they need. Records that cannot be sent are dropped and counted; the
// error returned is always nil, since the collector is not ours to fail.
func (s *Sender) WriteFlows(recs []flowtable.Record) error {
	now := time.Now()
	if !s.connect(now) {
		s.dropped.Add(uint64(len(recs)))
		return nil
	}
	tpl := s.newConn || s.opt.Transport == "udp" && (s.lastTpl.IsZero() || now.Sub(s.lastTpl) >= s.opt.TemplateRefresh)
	s.enc.begin(uint32(now.Unix()))
	if tpl {
		s.enc.templates()
	}
	pending := 0 // records in the message being built
	for i := range recs {
		r := &recs[i]
		app, name := []byte(r.AppName()), clip(r.App.ServerName())
		n, id := recordLen(r, app, name)
		if !s.enc.fits(n, id) && !s.enc.empty() {
			if !s.send(now, pending, tpl) {
				s.dropped.Add(uint64(len(recs) - i))
				return nil
			}
			tpl, pending = false, 0
			s.enc.begin(uint32(now.Unix()))
		}
		s.enc.record(r, id, app, name)
		pending++
	}
	if !s.enc.empty() {
		s.send(now, pending, tpl)
	}
	return nil
}

// send finishes and sends the current message; false when the send failed
// (its records are then counted as dropped).
func (s *Sender) send(now time.Time, recs int, tpl bool) bool {
	seq := s.enc.seq
	msg := s.enc.finish()
	s.conn.SetWriteDeadline(now.Add(WriteTimeout))
	if _, err := s.conn.Write(msg); err != nil {
		s.errs.Add(1)
		s.dropped.Add(uint64(recs))
		s.enc.seq = seq // nothing of it arrived
		if s.opt.Transport == "tcp" {
			s.disconnect(now) // UDP keeps its socket: the error was an ICMP report
		}
		return false
	}
	if tpl {
		s.templates.Add(1)
		s.lastTpl, s.newConn = now, false
	}
	s.messages.Add(1)
	s.records.Add(uint64(recs))
	s.bytes.Add(uint64(len(msg)))
	return true
}

// Close implements engine.Sink.
func (s *Sender) Close() error {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
		s.connected.Store(false)
	}
	return nil
}
