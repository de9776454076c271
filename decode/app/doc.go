// Package app detects the application protocol of a flow from the first
// payload bytes of each direction and keeps the few facts that name it: TLS
// and QUIC server names, ALPN and JA3/JA4 fingerprints, HTTP method, host,
// path, status and user agent, DNS query names, types, response codes and
// counts, SMTP/FTP/POP3/IMAP greetings and STARTTLS, SSH version banners.
//
// # What it owns
//
// State is the per-flow detection state. It is fixed-size (TestStateSize
// pins it) and holds no pointers, slices or strings, so a flow table can
// embed it in slabs the garbage collector never scans. Strings are copied
// into a small arena inside the State and truncated to per-field bounds
// (253 bytes for names, less for paths, user agents and banners).
//
// Pool is a per-shard slab of 4 KiB reassembly buffers. A ClientHello, an
// HTTP request header block or a QUIC CRYPTO stream that spans packets is
// collected in a Pool slot, which the State holds by index only while the
// message is incomplete (typically one or two packets) and gives back as
// soon as it is parsed, so the per-flow State stays small while a handful of
// slots serve a shard. When the pool runs dry it takes a slot back from its
// holder, which then goes on without; nothing leaks.
//
// # How to use it
//
// For each packet of a flow, in capture order, the owning worker calls
//
//	st.Feed(pool, payload, fromInitiator, l4, srcPort, dstPort)
//
// (empty payloads included: the first call makes the port-based guess) until
// st.Done() reports that nothing more can be learnt; a DNS flow is never
// Done, since every message is counted. Before recording a flow that is not
// Done, call st.Release(pool): it parses what is still pending and frees the
// slot. Then st.Proto (with st.Guess telling a port-based guess from a
// payload match), st.Name() ("HTTPS" for TLS to port 443) and
// st.AppendJSON give the results. A flow that shows more distinct DNS names
// or HTTP hosts than the State holds (DNS tunnels, resolvers, mDNS) reports
// st.NamesFull(): a flow table that must record every name records the flow
// then, as at an active timeout, and calls st.ClearNames(). Pool.Enable
// switches detectors off (their protocols fall back to the port guess).
//
// # Bounds
//
// Detection reads at most MaxPackets payload packets per direction and
// parses only the first message of each kind (first request and response,
// ClientHello and ServerHello, greetings and first commands). DNS flows
// parse every message's header and questions. No stream is reassembled
// beyond BufSize bytes of one client message, and TCP sequence numbers are
// not used: a segment repeated whole is recognised as a retransmission,
// reordered segments are not put back in order.
//
// # Threading and lifetimes
//
// A State and a Pool belong to one goroutine at a time (the flow-table
// shard's worker). Feed keeps no reference to the payload it is given, which
// may be ring memory that is recycled right after the call. Feed does not
// allocate, take locks, or call through interfaces; QUIC Initial keys are
// derived and applied with the allocation-free AES and HMAC of crypto.go.
//
// # Oracles
//
// Tests compare the findings with tshark (testdata/golden, made by
// testdata/gen_golden.sh from the shared pcap corpus), with nDPI's expected
// verdicts for its captures, with FoxIO's published JA4 examples and
// reference implementation, and with the sample packets of RFC 9001 and
// RFC 9369.
package app
