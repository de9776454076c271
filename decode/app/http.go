package app

import "bytes"

// h2Preface opens every HTTP/2 connection that does not start with TLS
// (RFC 9113 section 3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// knownMethods start a request even when its line is cut by the segment end.
var knownMethods = [...]string{"GET ", "POST ", "HEAD ", "PUT ", "DELETE ", "OPTIONS ", "CONNECT ", "PATCH ", "TRACE "}

// isHTTPRequest reports whether b starts with an HTTP/1.x request line: a
// line ending in HTTP/1.0 or HTTP/1.1 after an upper-case method token
// (WebDAV, SSDP's M-SEARCH...), or a well-known method whose line the
// segment cuts short (a long URL). RTSP and SIP lines are not HTTP.
func isHTTPRequest(b []byte) bool {
	// The method token first: it rules out most payloads in a few bytes,
	// before the line end is searched for. Every known method passes it.
	n := 0
	for n < len(b) && n < 16 && ('A' <= b[n] && b[n] <= 'Z' || b[n] == '-' || b[n] == '_') {
		n++
	}
	if n < 3 || n >= len(b) || b[n] != ' ' {
		return false
	}
	l, ok := line(b)
	if !ok {
		for _, m := range knownMethods {
			if hasPrefix(b, m) && len(b) > len(m) && b[len(m)] != ' ' {
				return true
			}
		}
		return false
	}
	return len(l) > n+9 && (hasSuffix(l, " HTTP/1.1") || hasSuffix(l, " HTTP/1.0"))
}

// isHTTPResponse reports whether b starts with an HTTP/1.x status line.
func isHTTPResponse(b []byte) bool {
	return len(b) >= 12 && hasPrefix(b, "HTTP/1.") && b[8] == ' ' && isDigit(b[9]) && isDigit(b[10]) && isDigit(b[11])
}

// isSSDP reports an SSDP request (multicast HTTP over UDP, "* HTTP/1.1").
func isSSDP(b []byte) bool {
	return hasPrefix(b, "M-SEARCH * HTTP/1.") || hasPrefix(b, "NOTIFY * HTTP/1.")
}

func hasSuffix(b []byte, s string) bool {
	return len(b) >= len(s) && string(b[len(b)-len(s):]) == s
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// httpFeed parses the first request (method, target, Host, User-Agent) and
// the first status line of an HTTP/1.x flow. A request whose header block
// spans segments is collected in a slot of p. After a CONNECT, the tunnelled
// TLS handshake is parsed too.
func (s *State) httpFeed(p *Pool, b []byte, d uint8) {
	if s.bkind == kindHTTP && s.bdir == d {
		s.httpAppend(p, b)
		return
	}
	if s.flags&flStartTLS != 0 && (isTLSRecord(b) || s.bkind == kindTLS) {
		s.tlsFeed(p, b, d)
		return
	}
	if s.flags&flResp == 0 && isHTTPResponse(b) {
		s.flags |= flResp
		s.setClient(1 - d)
		s.status = uint16(b[9]-'0')*100 + uint16(b[10]-'0')*10 + uint16(b[11]-'0')
		return
	}
	if !isHTTPRequest(b) && !isSSDP(b) {
		return
	}
	if s.flags&flReq != 0 { // a later request: only its Host
		if s.isClient(d) {
			s.laterRequest(b)
		}
		return
	}
	s.setClient(d)
	final := s.l4 != 6 || headerEnd(b) >= 0 || p == nil || len(b) >= BufSize
	s.httpRequest(b, final)
	if !final {
		s.slot, s.ticket = p.acquire()
		m := p.slot(s.slot, s.ticket)
		s.blen = uint16(copy(m[:BufSize], b))
		s.bkind, s.bdir = kindHTTP, d
	}
}

// httpAppend adds b to the request header block being collected and parses
// it once the block is whole or the buffer is full.
func (s *State) httpAppend(p *Pool, b []byte) {
	m := p.slot(s.slot, s.ticket)
	if m == nil {
		s.free(p)
		return
	}
	if s.isRetransmit(m, b) {
		return
	}
	s.blen += uint16(copy(m[s.blen:BufSize], b))
	if headerEnd(m[:s.blen]) >= 0 || s.blen == BufSize {
		s.httpRequest(m[:s.blen], true)
		s.free(p)
	}
}

// headerEnd returns the index of the blank line ending an HTTP header block
// in b, or -1.
func headerEnd(b []byte) int {
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		return i
	}
	return bytes.Index(b, []byte("\n\n"))
}

// httpRequest records the request line and the Host and User-Agent headers
// of the request at the start of b. Unless final, a last line without its
// line end is left for later (it may be cut).
func (s *State) httpRequest(b []byte, final bool) {
	first, _ := line(b)
	sp := bytes.IndexByte(first, ' ')
	if sp < 0 {
		return
	}
	s.flags |= flReq
	s.set(fMethod, first[:sp])
	target := first[sp+1:]
	if i := bytes.LastIndex(target, []byte(" HTTP/")); i >= 0 {
		target = target[:i]
	}
	s.set(fPath, target)
	if string(first[:sp]) == "CONNECT" {
		s.flags |= flStartTLS
	}
	rest := b[len(first):]
	if len(rest) > 0 && rest[0] == '\r' {
		rest = rest[1:]
	}
	if len(rest) > 0 && rest[0] == '\n' {
		rest = rest[1:]
	}
	for len(rest) > 0 {
		var l []byte
		if nl := bytes.IndexByte(rest, '\n'); nl >= 0 {
			l, rest = rest[:nl], rest[nl+1:]
		} else if final {
			l, rest = rest, nil
		} else {
			return
		}
		if len(l) > 0 && l[len(l)-1] == '\r' {
			l = l[:len(l)-1]
		}
		if len(l) == 0 {
			return // the blank line that ends the header block
		}
		switch {
		case hasPrefixFold(l, "HOST:"):
			s.addName(fHost, headerValue(l[5:]))
		case hasPrefixFold(l, "USER-AGENT:"):
			s.set(fUA, headerValue(l[11:]))
		}
	}
}

// headerValue trims a header value; like tshark, it ends at a NUL byte.
func headerValue(v []byte) []byte {
	if i := bytes.IndexByte(v, 0); i >= 0 {
		v = v[:i]
	}
	return trimSpace(v)
}

// laterRequest records the Host of a request after the first, from the
// complete header lines of b.
func (s *State) laterRequest(b []byte) {
	for rest := b; ; {
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			return
		}
		l := rest[:nl]
		rest = rest[nl+1:]
		if len(l) > 0 && l[len(l)-1] == '\r' {
			l = l[:len(l)-1]
		}
		if len(l) == 0 {
			return
		}
		if hasPrefixFold(l, "HOST:") {
			s.addName(fHost, headerValue(l[5:]))
			return
		}
	}
}
