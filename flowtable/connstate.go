package flowtable

import "github.com/netsentry/netsentry/decode"

// ConnState is Zeek's conn_state code of a flow (conn.log's conn_state):
// how far the connection got and how it ended, from the originator's
// (Record.Src's) point of view.
type ConnState uint8

// Zeek's conn_state codes, as documented in Zeek's
// base/protocols/conn/main.zeek.
const (
	ConnOTH    ConnState = iota // no SYN seen, just mid-stream traffic; every protocol but TCP and UDP
	ConnS0                      // connection attempt seen, no reply
	ConnS1                      // established (both sides sent a SYN), not terminated
	ConnSF                      // normal establishment and termination (FIN from both sides)
	ConnREJ                     // connection attempt rejected (RST answering the SYN)
	ConnS2                      // established, close attempt by the originator seen, no reply
	ConnS3                      // established, close attempt by the responder seen, no reply
	ConnRSTO                    // established, the originator aborted (sent a RST)
	ConnRSTR                    // the responder sent a RST
	ConnRSTOS0                  // the originator sent a SYN then a RST; no SYN-ACK seen
	ConnRSTRH                   // the responder sent a SYN-ACK then a RST; no SYN from the originator seen
	ConnSH                      // the originator sent a SYN then a FIN; no SYN-ACK seen ("half" open)
	ConnSHR                     // the responder sent a SYN-ACK then a FIN; no SYN from the originator seen
)

var connStateNames = [...]string{"OTH", "S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR"}

// String returns the code as Zeek writes it, e.g. "SF".
func (c ConnState) String() string {
	if int(c) < len(connStateNames) {
		return connStateNames[c]
	}
	return "OTH"
}

// Per-direction connection state, one byte of entry.ep per side (index 0 is
// key side A). For TCP the low three bits are Zeek's endpoint state
// (TCP_ENDPOINT_*), the others what Zeek's conn_state and our State need
// besides. For UDP epActive marks a side that sent a packet (Zeek's
// UDP_ACTIVE).
const (
	epInactive    uint8 = iota // nothing seen from this side (UDP: idem)
	epSynSent                  // sent a SYN (an originator's SYN-ACK: epSynAckSent)
	epSynAckSent               // the originator sent a SYN-ACK first
	epPartial                  // first packet was mid-stream (no SYN)
	epEstablished              // sent or answered a SYN, or ACKed a SYN-ACK seen without its SYN
	epClosed                   // sent a FIN
	epReset                    // sent a RST
	epStateMask         = 7

	epActive          uint8 = 1      // UDP: this side sent a packet
	epSentSynAck      uint8 = 1 << 3 // sent a SYN-ACK (our State: the handshake's second step)
	epData            uint8 = 1 << 4 // sent payload (Zeek's "size > 0")
	epResetAfterClose uint8 = 1 << 5 // went from CLOSED to RESET (Zeek's prev_state CLOSED)
	// Originator only: Zeek's RSTOS0 needs the history to match
	// ^S[^HAFGIQ]*R, i.e. the connection's first packet was the
	// originator's SYN (epSynFirst) and, before its RST, the originator sent
	// no SYN-ACK (H), pure ACK (A), FIN (F), FIN+RST (I) or SYN+FIN/SYN+RST
	// (Q) (epNotSynRst). Zeek's G (a content gap) is not tracked.
	epNotSynRst uint8 = 1 << 6
	epSynFirst  uint8 = 1 << 7
)

// tcpEndpoints advances Zeek's endpoint state machine
// (TCPSessionAdapter::UpdateStateMachine) for one segment with flags sent
// by ep (isOrig: the originator) to peer; data says it carried payload.
// Sequence numbers are not looked at: Zeek's checks that need them only
// raise weirds, except the SYN/SYN-ACK reversal, taken here on flags alone.
func tcpEndpoints(ep, peer *uint8, flags uint8, data, isOrig bool) {
	syn, ack := flags&decode.TCPSyn != 0, flags&decode.TCPAck != 0
	fin, rst := flags&decode.TCPFin != 0, flags&decode.TCPRst != 0
	if isOrig && *ep&epStateMask != epReset {
		// The history letter Zeek would record, as far as RSTOS0 cares.
		n := b2i(syn) + b2i(fin) + b2i(rst)
		if n > 1 || (n == 1 && (fin || syn && ack)) || (n == 0 && !data && ack) {
			*ep |= epNotSynRst
		}
	}
	if data {
		*ep |= epData
	}
	if syn && ack {
		*ep |= epSentSynAck
	}
	st, ps := *ep&epStateMask, *peer&epStateMask
	switch st {
	case epInactive:
		if syn {
			if isOrig {
				if ack {
					setEP(ep, epSynAckSent)
				} else {
					setEP(ep, epSynSent)
				}
			} else {
				if !ack && ps == epSynAckSent {
					setEP(peer, epEstablished) // SYN/SYN-ACK reversal
				}
				if ps == epSynSent {
					setEP(peer, epEstablished)
				}
				setEP(ep, epEstablished)
			}
		}
		if fin {
			setEP(ep, epClosed)
		}
		if rst {
			setEP(ep, epReset)
		}
		if *ep&epStateMask == epInactive {
			switch {
			case !isOrig && !data && ps == epSynSent:
				// An ACK of the SYN before the SYN-ACK: not a partial connection.
			case ack && ps == epEstablished:
				setEP(ep, epEstablished) // the SYN was missed, its SYN-ACK was not
			default:
				setEP(ep, epPartial)
			}
		}
	case epSynSent, epSynAckSent:
		if fin {
			setEP(ep, epClosed)
		}
		if rst {
			setEP(ep, epReset)
		}
	case epEstablished, epPartial:
		if syn && st == epPartial && ps == epInactive && !ack {
			setEP(ep, epSynSent)
		}
		if fin && !rst {
			setEP(ep, epClosed)
			if ps == epReset && *peer&epResetAfterClose != 0 {
				setEP(peer, epClosed) // a FIN then a RST from the peer: a normal close
			}
		}
		if rst {
			setEP(ep, epReset)
		}
	case epClosed:
		if rst && ps != epClosed {
			setEP(ep, epReset)
		}
	}
}

// setEP sets the endpoint state of *p to s, remembering in
// epResetAfterClose whether a RESET came from CLOSED (Zeek's prev_state).
func setEP(p *uint8, s uint8) {
	if s == epReset {
		if *p&epStateMask == epClosed {
			*p |= epResetAfterClose
		} else {
			*p &^= epResetAfterClose
		}
	}
	*p = *p&^epStateMask | s
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// zeekConnState is Zeek's conn_state function (base/protocols/conn/main.zeek)
// over the originator's and responder's state bytes, for IP protocol proto.
func zeekConnState(proto, orig, resp uint8) ConnState {
	switch proto {
	case 6:
	case 17:
		o, r := orig&epActive != 0, resp&epActive != 0
		switch {
		case o && r:
			return ConnSF
		case o:
			return ConnS0
		case r: // Zeek's flipped one-sided flows; here the first packet's sender is the originator
			return ConnSHR
		}
		return ConnOTH
	default:
		return ConnOTH
	}
	os, rs := orig&epStateMask, resp&epStateMask
	oInactive := os == epInactive || os == epPartial
	rInactive := rs == epInactive || rs == epPartial
	switch {
	case rs == epReset:
		switch {
		case os == epSynSent || os == epSynAckSent || (os == epReset && orig&epData == 0 && resp&epData == 0):
			return ConnREJ
		case oInactive:
			return ConnRSTRH
		}
		return ConnRSTR
	case os == epReset:
		if rInactive {
			if orig&(epSynFirst|epNotSynRst) == epSynFirst {
				return ConnRSTOS0
			}
			return ConnOTH
		}
		return ConnRSTO
	case rs == epClosed && os == epClosed:
		return ConnSF
	case os == epClosed:
		if rInactive {
			return ConnSH
		}
		return ConnS2
	case rs == epClosed:
		if oInactive {
			return ConnSHR
		}
		return ConnS3
	case os == epSynSent && rs == epInactive:
		return ConnS0
	case os == epEstablished && rs == epEstablished:
		return ConnS1
	}
	return ConnOTH
}

// ConnState returns the flow's conn_state as Zeek would log it, the
// originator being the flow's initiator (Src).
func (e *entry) connState() ConnState {
	o, r := e.ep[0], e.ep[1]
	if e.initB {
		o, r = r, o
	}
	return zeekConnState(e.key.Proto, o, r)
}
