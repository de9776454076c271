package alerting

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// ntCert makes a self-signed certificate for 127.0.0.1 and the pool that trusts it.
func ntCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "netsentry test smtp"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

// smtpRecord is what the test server saw of one message.
type smtpRecord struct {
	mech, user, pass string
	tlsAtAuth        bool
	tlsAtMail        bool
	from             string
	to               []string
	data             []byte
}

type smtpBackend struct {
	noAuth bool // accept MAIL without AUTH
	mu     sync.Mutex
	msgs   []smtpRecord
	got    chan struct{}
}

func (b *smtpBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &smtpSession{b: b, c: c}, nil
}

type smtpSession struct {
	b   *smtpBackend
	c   *smtp.Conn
	rec smtpRecord
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	_, s.rec.tlsAtAuth = s.c.TLSConnectionState()
	s.rec.mech = mech
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		s.rec.user, s.rec.pass = user, pass
		if user != "alerts" || pass != "hunter2" {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.rec.user == "" && !s.b.noAuth {
		return smtp.ErrAuthRequired
	}
	_, s.rec.tlsAtMail = s.c.TLSConnectionState()
	s.rec.from = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rec.to = append(s.rec.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.rec.data = b
	s.b.mu.Lock()
	s.b.msgs = append(s.b.msgs, s.rec)
	s.b.mu.Unlock()
	s.b.got <- struct{}{}
	return nil
}

func (s *smtpSession) Reset()        {}
func (s *smtpSession) Logout() error { return nil }

// ntStartSMTP runs a go-smtp server on a free loopback port; withTLS offers STARTTLS. AUTH is
// refused on a connection that is not encrypted (AllowInsecureAuth false).
func ntStartSMTP(t *testing.T, withTLS bool) (*smtpBackend, int, *x509.CertPool) {
	t.Helper()
	be := &smtpBackend{got: make(chan struct{}, 8)}
	s := smtp.NewServer(be)
	s.Domain = "localhost"
	s.ReadTimeout, s.WriteTimeout = 5*time.Second, 5*time.Second
	var pool *x509.CertPool
	if withTLS {
		var cert tls.Certificate
		cert, pool = ntCert(t)
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return be, l.Addr().(*net.TCPAddr).Port, pool
}

// ntParseMail decodes a message with the standard library (an oracle independent of go-mail).
func ntParseMail(t *testing.T, raw []byte) (subject, body string, hdr mail.Header) {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatalf("read message: %v\n%s", err, raw)
	}
	subject, err = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	var r io.Reader = m.Body
	if strings.EqualFold(m.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return subject, strings.ReplaceAll(string(b), "\r\n", "\n"), m.Header
}

func ntWaitMail(t *testing.T, be *smtpBackend) smtpRecord {
	t.Helper()
	select {
	case <-be.got:
	case <-time.After(10 * time.Second):
		t.Fatal("smtp server got no message in 10s")
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	return be.msgs[len(be.msgs)-1]
}

func TestEmailSTARTTLSAuthPlain(t *testing.T) {
	be, port, pool := ntStartSMTP(t, true)
	d := NewDispatcher(NotifyOptions{Timeout: 5 * time.Second, Retries: 1, MinBackoff: 10 * time.Millisecond,
		SMTP: SMTPConfig{Host: "127.0.0.1", Port: port, Username: "alerts", Password: "hunter2",
			From: "netsentry@sensor.test", TLS: "mandatory", TLSConfig: &tls.Config{RootCAs: pool}}})
	ntClose(t, d)

	a := ntAlert("Potential Port Scan", "src_ip=10.0.0.5", "firing")
	a.Values = map[string]float64{"network.connection_count": 120, "network.unique_dst_ports": 512.5}
	ch := Channel{Type: "email", Recipients: []string{"soc@corp.test", "oncall@corp.test"}}
	d.Send(Notification{Channel: ch, Rule: "Potential Port Scan", Alerts: []Alert{a}})
	rec := ntWaitMail(t, be)

	if rec.mech != "PLAIN" || !rec.tlsAtAuth || !rec.tlsAtMail || rec.user != "alerts" {
		t.Errorf("auth %q over TLS %v, mail over TLS %v, user %q", rec.mech, rec.tlsAtAuth, rec.tlsAtMail, rec.user)
	}
	if rec.from != "netsentry@sensor.test" || strings.Join(rec.to, " ") != "soc@corp.test oncall@corp.test" {
		t.Errorf("envelope from %q to %v", rec.from, rec.to)
	}
	subject, body, hdr := ntParseMail(t, rec.data)
	t.Logf("subject: %s\n%s", subject, body)
	if want := "[FIRING:1] Potential Port Scan (critical): src_ip=10.0.0.5"; subject != want {
		t.Errorf("subject %q, want %q", subject, want)
	}
	if !strings.Contains(hdr.Get("Content-Type"), "text/plain") {
		t.Errorf("content-type %q", hdr.Get("Content-Type"))
	}
	for _, want := range []string{
		`Alert rule "Potential Port Scan" (critical) is FIRING for 1 group(s).`,
		"Group:    src_ip=10.0.0.5",
		"Since:    2026-12-03T14:00:00Z",
		"Value:    network.connection_count = 120",
		"Value:    network.unique_dst_ports = 512.5",
		"summary: Potential Port Scan on src_ip=10.0.0.5",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q", want)
		}
	}
	ntWait(t, time.Second, "sent", func() bool { return d.Stats()[0].Sent == 1 })

	// The resolved variant, two groups at once.
	r1 := ntAlert("Potential Port Scan", "src_ip=10.0.0.5", "resolved")
	r2 := ntAlert("Potential Port Scan", "src_ip=10.0.0.7", "resolved")
	d.Send(Notification{Channel: ch, Rule: "Potential Port Scan", Alerts: []Alert{r1, r2}})
	rec = ntWaitMail(t, be)
	subject, body, _ = ntParseMail(t, rec.data)
	if want := "[RESOLVED:2] Potential Port Scan (critical): src_ip=10.0.0.5, src_ip=10.0.0.7"; subject != want {
		t.Errorf("subject %q, want %q", subject, want)
	}
	for _, want := range []string{"is RESOLVED for 2 group(s).", "Group:    src_ip=10.0.0.7", "Ended:    2026-12-03T14:01:00Z"} {
		if !strings.Contains(body, want) {
			t.Errorf("resolved body lacks %q:\n%s", want, body)
		}
	}
}

// TestEmailMandatoryTLSRefusesPlain: with STARTTLS mandatory, a server without it gets no mail
// (and no password); with opportunistic, the mail goes in plain text when no AUTH is asked.
func TestEmailMandatoryTLSRefusesPlain(t *testing.T) {
	be, port, _ := ntStartSMTP(t, false)
	d := NewDispatcher(NotifyOptions{Timeout: 2 * time.Second, Retries: -1,
		SMTP: SMTPConfig{Host: "127.0.0.1", Port: port, Username: "alerts", Password: "hunter2", From: "n@sensor.test"}})
	ch := Channel{Type: "email", Recipients: []string{"soc@corp.test"}}
	d.Send(Notification{Channel: ch, Rule: "r", Alerts: []Alert{ntAlert("r", "", "firing")}})
	ntWait(t, 5*time.Second, "the failure", func() bool { return d.Stats()[0].Failed == 1 })
	be.mu.Lock()
	n := len(be.msgs)
	be.mu.Unlock()
	if n != 0 {
		t.Errorf("server without STARTTLS got %d messages under the mandatory policy", n)
	}
	ntClose(t, d)
}

// TestEmailPolicies: opportunistic sends in plain text to a server without STARTTLS (no AUTH
// asked), and upgrades where it is offered; none never upgrades.
func TestEmailPolicies(t *testing.T) {
	for _, tc := range []struct {
		policy    string
		serverTLS bool
		wantTLS   bool
	}{
		{"opportunistic", false, false},
		{"opportunistic", true, true},
		{"none", true, false},
	} {
		be, port, pool := ntStartSMTP(t, tc.serverTLS)
		be.noAuth = true
		d := NewDispatcher(NotifyOptions{Timeout: 2 * time.Second, Retries: -1,
			SMTP: SMTPConfig{Host: "127.0.0.1", Port: port, From: "n@sensor.test", TLS: tc.policy,
				TLSConfig: &tls.Config{RootCAs: pool}}})
		d.Send(Notification{Channel: Channel{Type: "email", Recipients: []string{"soc@corp.test"}}, Rule: "r",
			Alerts: []Alert{ntAlert("r", "", "firing")}})
		rec := ntWaitMail(t, be)
		if rec.tlsAtMail != tc.wantTLS {
			t.Errorf("policy %s, server STARTTLS %v: mail over TLS %v, want %v", tc.policy, tc.serverTLS, rec.tlsAtMail, tc.wantTLS)
		}
		ntClose(t, d)
	}
}

// TestEmailBadPasswordFails: a permanent SMTP reply (535) fails at once, without retries.
func TestEmailBadPasswordFails(t *testing.T) {
	_, port, pool := ntStartSMTP(t, true)
	d := NewDispatcher(NotifyOptions{Timeout: 2 * time.Second, Retries: 2, MinBackoff: time.Millisecond,
		SMTP: SMTPConfig{Host: "127.0.0.1", Port: port, Username: "alerts", Password: "wrong", From: "n@sensor.test",
			TLSConfig: &tls.Config{RootCAs: pool}}})
	ntClose(t, d)
	d.Send(Notification{Channel: Channel{Type: "email", Recipients: []string{"soc@corp.test"}}, Rule: "r",
		Alerts: []Alert{ntAlert("r", "", "firing")}})
	ntWait(t, 5*time.Second, "the failure", func() bool { return d.Stats()[0].Failed == 1 })
	if s := d.Stats()[0]; s.Retried != 0 {
		t.Errorf("a refused AUTH (535, permanent) was retried: %+v", s)
	}
}

func TestRenderEmailSubjectOneLine(t *testing.T) {
	a := ntAlert("evil\r\nBcc: x@y", "src_ip=1\n2", "firing")
	s, _, err := RenderEmail(Notification{Rule: "evil\r\nBcc: x@y", Alerts: []Alert{a}}, time.Now())
	if err != nil || strings.ContainsAny(s, "\r\n") {
		t.Errorf("subject %q err %v", s, err)
	}
}

func FuzzRenderEmail(f *testing.F) {
	f.Add("Potential Port Scan", "src_ip=10.0.0.5", "critical", "summary text", 1.5, true)
	f.Add("{{.Rule}}", "", "", "", math.Inf(-1), false)
	f.Fuzz(func(t *testing.T, rule, group, sev, summary string, v float64, firing bool) {
		status := "resolved"
		if firing {
			status = "firing"
		}
		a := Alert{Rule: rule, GroupKey: group, Severity: sev, Status: status,
			Annotations: map[string]string{"summary": summary}, Values: map[string]float64{"m": v}}
		s, b, err := RenderEmail(Notification{Rule: rule, Alerts: []Alert{a}}, time.Unix(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		if strings.ContainsAny(s, "\r\n") {
			t.Fatalf("subject has a line break: %q", s)
		}
		if !strings.Contains(b, "Sent by NetSentry") {
			t.Fatalf("body cut short: %q", b)
		}
	})
}

// TestRenderEmailMixed: a notification with firing and resolved alerts is the firing variant,
// listing the resolved ones at its end.
func TestRenderEmailMixed(t *testing.T) {
	n := Notification{Rule: "Potential Port Scan", Alerts: []Alert{
		ntAlert("Potential Port Scan", "src_ip=10.0.0.9", "resolved"),
		ntAlert("Potential Port Scan", "src_ip=10.0.0.5", "firing"),
	}}
	s, b, err := RenderEmail(n, time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if want := "[FIRING:1] Potential Port Scan (critical): src_ip=10.0.0.5"; s != want {
		t.Errorf("subject %q, want %q", s, want)
	}
	firing, resolved := strings.Index(b, "Group:    src_ip=10.0.0.5"), strings.Index(b, "Group:    src_ip=10.0.0.9")
	meanwhile := strings.Index(b, "Resolved meanwhile:")
	if firing < 0 || meanwhile < firing || resolved < meanwhile || !strings.Contains(b, "is FIRING for 1 group(s).") ||
		!strings.HasSuffix(b, "Sent by NetSentry at 2026-12-03T15:00:00Z.\n") {
		t.Errorf("body:\n%s", b)
	}
}
