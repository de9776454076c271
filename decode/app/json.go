package app

import (
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends the flow's application object to dst and returns the
// extended slice: one member per protocol seen, named by protocol, e.g.
//
//	{"tls":{"sni":"example.com","alpn":"h2","version":"TLS 1.3","ja3":"…","ja4":"t13d…"}}
//	{"dns":{"query":"example.com","qtype":"A","rcode":"NOERROR","answers":2,"queries":3}}
//	{"http":{"method":"GET","host":"example.com","path":"/","status":200,"user_agent":"…"}}
//	{"smtp":{"banner":"220 …","helo":"…","starttls":true},"tls":{"sni":"…"}}
//	{"ssh":{"client":"SSH-2.0-…","server":"SSH-2.0-…"}}
//	{"quic":{"version":"1","sni":"…","alpn":"h3","ja4":"q13d…"}}
//
// {"guess":true} for a port-based guess (State.Guess: no payload matched,
// Proto comes from the server port alone), and {} when nothing is known.
// Strings read as tshark shows them (control characters as C or octal
// escapes, bytes that are not UTF-8 as U+FFFD; see appendJSONString).
func (s *State) AppendJSON(dst []byte) []byte {
	w := jsonWriter{b: append(dst, '{')}
	if s.Guess {
		return append(w.b, `"guess":true}`...)
	}
	if s.Proto == Unknown {
		return append(w.b, '}')
	}
	switch s.Proto {
	case HTTP, SSDP:
		w.open(jsonKeys[s.Proto])
		w.str("method", s.get(fMethod))
		w.str("host", s.get(fHost))
		w.str("path", s.get(fPath))
		if s.flags&flResp != 0 {
			w.num("status", uint64(s.status))
		}
		w.str("user_agent", s.get(fUA))
		s.namesJSON(&w, "hosts")
		w.close()
	case TLS:
		s.tlsJSON(&w)
	case DNS, MDNS, LLMNR:
		w.open("dns")
		w.str("query", s.get(fQuery))
		if s.slen[fQuery] != 0 {
			w.name("qtype", qtypeName(s.qtype), "TYPE", uint64(s.qtype))
		}
		if s.flags&flDNSResp != 0 {
			w.name("rcode", rcodeName(s.rcode), "RCODE", uint64(s.rcode))
			w.num("answers", uint64(s.answers))
		}
		w.num("queries", uint64(s.queries))
		w.num("responses", uint64(s.replies))
		s.namesJSON(&w, "names")
		w.close()
	case SSH:
		w.open("ssh")
		w.str("client", s.get(fSSHClient))
		w.str("server", s.get(fSSHServer))
		w.close()
	case QUIC:
		w.open("quic")
		if s.quicVer != 0 {
			w.key("version")
			w.b = append(w.b, '"')
			w.b = appendQUICVersion(w.b, s.quicVer)
			w.b = append(w.b, '"')
		}
		w.str("sni", s.get(fSNI))
		w.str("alpn", s.get(fALPN))
		s.fingerprintJSON(&w)
		w.str("user_agent", s.get(fUA))
		w.close()
	case SMTP, FTP, POP3, IMAP:
		w.open(jsonKeys[s.Proto])
		w.str("banner", s.get(fBanner))
		w.str("helo", s.get(fHelo))
		w.str("user", s.get(fUser))
		if s.flags&flStartTLS != 0 {
			w.key("starttls")
			w.b = append(w.b, "true"...)
		}
		w.close()
		if s.flags&(flHello|flSrvHello) != 0 {
			s.tlsJSON(&w)
		}
	case HTTP2:
		w.open("http2")
		w.close()
	case DHCP:
		w.open("dhcp")
		if s.msgType != 0 {
			w.name("type", dhcpTypeName(s.msgType), "TYPE", uint64(s.msgType))
		}
		w.str("hostname", s.get(fHostname))
		w.close()
	case NTP:
		w.open("ntp")
		w.num("version", uint64(s.msgVer))
		w.num("mode", uint64(s.msgType))
		w.close()
	case DHCPv6:
		w.open("dhcpv6")
		w.num("type", uint64(s.msgType))
		w.close()
	}
	if s.Proto == HTTP && s.flags&(flHello|flSrvHello) != 0 { // CONNECT tunnel
		s.tlsJSON(&w)
	}
	return append(w.b, '}')
}

// tlsJSON writes the "tls" member.
func (s *State) tlsJSON(w *jsonWriter) {
	w.open("tls")
	w.str("sni", s.get(fSNI))
	w.str("alpn", s.get(fALPN))
	v := s.tlsCli
	switch {
	case s.flags&flSrvHello != 0:
		v = s.tlsSrv
	case s.tlsMax != 0:
		v = s.tlsMax
	}
	w.version("version", v)
	w.version("record_version", s.tlsRec)
	w.version("client_version", s.tlsCli)
	s.fingerprintJSON(w)
	w.close()
}

// fingerprintJSON writes "ja3" and "ja4" when the whole ClientHello was seen.
func (s *State) fingerprintJSON(w *jsonWriter) {
	if s.flags&flHelloAll == 0 {
		return
	}
	w.key("ja3")
	w.b = append(w.b, '"')
	for _, c := range s.ja3 {
		w.b = append(w.b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	w.b = append(w.b, '"')
	w.str("ja4", s.get(fJA4))
}

func dhcpTypeName(t uint8) string {
	names := [...]string{"", "DISCOVER", "OFFER", "REQUEST", "DECLINE", "ACK", "NAK", "RELEASE", "INFORM"}
	if int(t) < len(names) {
		return names[t]
	}
	return ""
}

// jsonWriter appends JSON object members, tracking commas.
type jsonWriter struct {
	b     []byte
	n     int // members written in the innermost open object
	outer int // members of the enclosing object
}

func (w *jsonWriter) key(k string) {
	if w.n > 0 {
		w.b = append(w.b, ',')
	}
	w.n++
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
}

// open starts a nested object member (one level deep).
func (w *jsonWriter) open(k string) {
	w.key(k)
	w.b = append(w.b, '{')
	w.outer, w.n = w.n, 0
}

func (w *jsonWriter) close() {
	w.b = append(w.b, '}')
	w.n = w.outer
}

// str writes a string member, nothing when v is empty.
func (w *jsonWriter) str(k string, v []byte) {
	if len(v) == 0 {
		return
	}
	w.key(k)
	w.b = appendJSONString(w.b, v)
}

func (w *jsonWriter) num(k string, v uint64) {
	w.key(k)
	w.b = strconv.AppendUint(w.b, v, 10)
}

// name writes a mnemonic, or prefix and number when there is none
// ("TYPE65280").
func (w *jsonWriter) name(k, mnemonic, prefix string, v uint64) {
	w.key(k)
	w.b = append(w.b, '"')
	if mnemonic != "" {
		w.b = append(w.b, mnemonic...)
	} else {
		w.b = strconv.AppendUint(append(w.b, prefix...), v, 10)
	}
	w.b = append(w.b, '"')
}

// version writes a TLS version by name ("TLS 1.2"), or in hex; nothing for 0.
func (w *jsonWriter) version(k string, v uint16) {
	if v == 0 {
		return
	}
	w.key(k)
	w.b = append(w.b, '"')
	if n := tlsVersionName(v); n != "" {
		w.b = append(w.b, n...)
	} else {
		w.b = append(w.b, '0', 'x', hexDigits[v>>12], hexDigits[v>>8&0xf], hexDigits[v>>4&0xf], hexDigits[v&0xf])
	}
	w.b = append(w.b, '"')
}

// appendJSONString appends v as a JSON string of the text Wireshark 4.0
// shows for it, so that names compare with what tshark prints: control
// characters as C escapes (\a \b \t \n \v \f \r) or three octal digits
// (\033), written into the JSON string as such (the backslash escaped);
// quotes and backslashes escaped as JSON wants. Bytes that are not UTF-8 are
// replaced as Wireshark replaces them: a lead byte and the continuation bytes
// that follow it become one U+FFFD when they fall short of a character or
// encode a surrogate or a value beyond U+10FFFF (lead bytes 0xF8..0xFD
// start the 5- and 6-byte forms of old UTF-8); a stray continuation byte,
// 0xFE or 0xFF becomes one U+FFFD; an over-long encoding decodes to its
// character.
func appendJSONString(dst, v []byte) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(v); {
		c := v[i]
		if c < utf8.RuneSelf {
			dst = appendJSONASCII(dst, c)
			i++
			continue
		}
		var need int
		var r rune
		switch {
		case c&0xe0 == 0xc0:
			need, r = 1, rune(c&0x1f)
		case c&0xf0 == 0xe0:
			need, r = 2, rune(c&0x0f)
		case c&0xf8 == 0xf0:
			need, r = 3, rune(c&0x07)
		case c&0xfc == 0xf8: // the 5- and 6-byte forms of old UTF-8
			need, r = 4, utf8.MaxRune+1
		case c&0xfe == 0xfc:
			need, r = 5, utf8.MaxRune+1
		default:
			dst = append(dst, "\ufffd"...)
			i++
			continue
		}
		j := i + 1
		for ; j < len(v) && j <= i+need && v[j]&0xc0 == 0x80; j++ {
			if r <= utf8.MaxRune {
				r = r<<6 | rune(v[j]&0x3f)
			}
		}
		switch {
		case j-i-1 < need || r > utf8.MaxRune || (r >= 0xd800 && r <= 0xdfff):
			dst = append(dst, "\ufffd"...)
		case r < utf8.RuneSelf:
			dst = appendJSONASCII(dst, byte(r))
		default:
			dst = utf8.AppendRune(dst, r)
		}
		i = j
	}
	return append(dst, '"')
}

// appendJSONASCII appends one ASCII character as Wireshark shows it,
// escaped as JSON wants.
func appendJSONASCII(dst []byte, c byte) []byte {
	if c >= 0x20 && c != 0x7f {
		if c == '"' || c == '\\' {
			return append(dst, '\\', c)
		}
		return append(dst, c)
	}
	dst = append(dst, '\\', '\\') // a backslash in the text
	switch c {
	case '\a':
		return append(dst, 'a')
	case '\b':
		return append(dst, 'b')
	case '\t':
		return append(dst, 't')
	case '\n':
		return append(dst, 'n')
	case '\v':
		return append(dst, 'v')
	case '\f':
		return append(dst, 'f')
	case '\r':
		return append(dst, 'r')
	}
	return append(dst, '0'+c>>6, '0'+c>>3&7, '0'+c&7)
}
