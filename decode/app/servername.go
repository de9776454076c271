package app

// ServerName returns the name the flow's client asked for, the one flow
// exporters carry beside the protocol: the TLS or QUIC server name (SNI),
// the first DNS (mDNS, LLMNR) question name, or the HTTP Host header; nil
// when there is none. The slice aliases s; copy it to keep it.
func (s *State) ServerName() []byte {
	if n := s.get(fSNI); len(n) > 0 {
		return n
	}
	switch s.Proto {
	case DNS, MDNS, LLMNR:
		return s.get(fQuery)
	case HTTP, SSDP:
		return s.get(fHost)
	}
	return nil
}
