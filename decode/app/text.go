package app

import "bytes"

// detectText recognises the line-based mail and file-transfer protocols from
// a server greeting or a first client command, and records the protocol.
// A "220" greeting is SMTP unless it names FTP or the port is FTP's; the
// client's first command settles it (textFeed).
func (s *State) detectText(p *Pool, b []byte, d uint8) bool {
	// The prefixes hold no line end, so they are matched on b itself: the
	// first line is looked for only when a banner needs reading.
	var x Proto
	client := d // direction of the client
	switch {
	case len(b) >= 4 && b[0] == '2' && b[1] == '2' && b[2] == '0' && (b[3] == ' ' || b[3] == '-'):
		x = SMTP
		if s.Proto == FTP {
			x = FTP
		} else if l, _ := line(b); containsFold(l, "FTP") && !containsFold(l, "SMTP") {
			x = FTP
		}
		client = 1 - d
	case hasPrefix(b, "+OK"):
		x, client = POP3, 1-d
	case hasPrefix(b, "* OK"):
		x, client = IMAP, 1-d
	case hasPrefixFold(b, "EHLO ") || hasPrefixFold(b, "HELO "):
		x = SMTP
	case s.Proto == FTP && hasPrefixFold(b, "USER "):
		x = FTP
	default:
		return false
	}
	if !p.on(x) {
		return false
	}
	s.found(x)
	s.setClient(client)
	return true
}

// textFeed follows the greeting and the first commands of SMTP, FTP, POP3
// and IMAP: the server's banner, EHLO/HELO, USER, and the STARTTLS family,
// after which the TLS handshake is parsed and the flow keeps its protocol.
func (s *State) textFeed(p *Pool, b []byte, d uint8) {
	if s.flags&flStartTLS != 0 && (isTLSRecord(b) || s.bkind == kindTLS) {
		s.tlsFeed(p, b, d)
		return
	}
	l, _ := line(b)
	if !s.isClient(d) {
		s.set(fBanner, l)
		return
	}
	switch {
	case hasPrefixFold(l, "EHLO ") || hasPrefixFold(l, "HELO "):
		if s.Proto == FTP {
			s.Proto = SMTP
		}
		s.set(fHelo, trimSpace(l[5:]))
	case hasPrefixFold(l, "USER "):
		if s.Proto == SMTP && !containsFold(s.get(fBanner), "SMTP") {
			s.Proto = FTP
		}
		s.set(fUser, trimSpace(l[5:]))
	case hasPrefixFold(l, "STARTTLS"), hasPrefixFold(l, "STLS"), hasPrefixFold(l, "AUTH TLS"), hasPrefixFold(l, "AUTH SSL"):
		s.flags |= flStartTLS
	case s.Proto == IMAP && containsFold(l, " STARTTLS"):
		s.flags |= flStartTLS
	}
}

// containsFold reports whether b contains the upper-case ASCII string sub,
// ignoring case.
func containsFold(b []byte, sub string) bool {
	for i := 0; i+len(sub) <= len(b); i++ {
		if hasPrefixFold(b[i:], sub) {
			return true
		}
	}
	return false
}

// sshFeed records the SSH version banners ("SSH-2.0-...") of both sides.
// The server is the side on port 22 or, failing that, the responder.
func (s *State) sshFeed(b []byte, d uint8) {
	if !hasPrefix(b, "SSH-") {
		return
	}
	l, _ := line(b)
	if s.isClient(d) {
		s.set(fSSHClient, l)
	} else {
		s.set(fSSHServer, l)
	}
}

// isDHCP reports a BOOTP message with the DHCP magic cookie (RFC 2131).
func isDHCP(b []byte) bool {
	return len(b) >= 240 && (b[0] == 1 || b[0] == 2) && be32(b[236:]) == 0x63825363
}

// dhcpFeed records the DHCP message type (option 53) and the client's host
// name (option 12).
func (s *State) dhcpFeed(b []byte) {
	opts := b[240:]
	for len(opts) > 0 {
		code := opts[0]
		if code == 255 {
			return
		}
		if code == 0 || len(opts) < 2 {
			opts = opts[1:]
			continue
		}
		n := int(opts[1])
		if 2+n > len(opts) {
			return
		}
		v := opts[2 : 2+n]
		switch {
		case code == 53 && n == 1:
			s.msgType = v[0]
		case code == 12:
			s.set(fHostname, bytes.TrimRight(v, "\x00"))
		}
		opts = opts[2+n:]
	}
}

// isNTP reports an NTP packet of version 1 to 4 with a valid mode.
func isNTP(b []byte) bool {
	if len(b) < 48 {
		return false
	}
	v, mode := b[0]>>3&7, b[0]&7
	return v >= 1 && v <= 4 && mode >= 1 && mode <= 5
}
