package flowtable

import (
	"unsafe"

	"github.com/netsentry/netsentry/decode"
	"github.com/netsentry/netsentry/decode/app"
)

// State is a flow's connection state. TCP flows move through SYN_SENT,
// ESTABLISHED, FIN_WAIT, CLOSED or RESET; other protocols stay Active.
type State uint8

// Flow states.
const (
	StateActive State = iota
	StateSynSent
	StateEstablished
	StateFinWait
	StateClosed
	StateReset
)

var stateNames = [...]string{"ACTIVE", "SYN_SENT", "ESTABLISHED", "FIN_WAIT", "CLOSED", "RESET"}

// String returns the state's name as the API shows it, e.g. "ESTABLISHED".
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "UNKNOWN"
}

// EndReason says why a flow record was exported.
type EndReason uint8

// End reasons.
const (
	EndNone         EndReason = iota // still open (a snapshot)
	EndFin                           // TCP closed by FIN from both sides, after the linger
	EndRst                           // TCP reset, after the linger
	EndIdle                          // no packet for the idle timeout
	EndActive                        // open longer than the active timeout; a new record continues it
	EndEviction                      // the table was full and this was the oldest idle flow
	EndEndOfCapture                  // the replayed file ended
	EndShutdown                      // the sensor stopped capturing
)

var endNames = [...]string{"", "fin", "rst", "idle", "active", "eviction", "end-of-capture", "shutdown"}

// String returns the reason as written in flow records, e.g. "idle".
func (r EndReason) String() string {
	if int(r) < len(endNames) {
		return endNames[r]
	}
	return "unknown"
}

// Record is one flow as exported or snapshotted: oriented so that Src is the
// initiator (the SYN sender, else the first packet's source) and "Tx" counts
// what the initiator sent. Records are copies; they hold no reference into a
// shard.
type Record struct {
	Src, Dst         decode.Addr
	SrcPort, DstPort uint16
	VLAN, InnerVLAN  uint16
	Proto            uint8
	IPVersion        uint8
	Tunnel           decode.Tunnel
	State            State
	ConnState        ConnState // Zeek's conn_state, Src being the originator
	End              EndReason
	FlagsTx, FlagsRx uint8
	PacketsTx        uint64
	PacketsRx        uint64
	BytesTx          uint64 // wire bytes of whole frames, initiator to responder
	BytesRx          uint64
	// IPBytesTx and IPBytesRx add up the IP lengths of the packets
	// (decode.Packet.IPLen: no link-layer header, no Ethernet padding; the
	// inner header of a tunnelled flow), as IPFIX octetDeltaCount counts.
	IPBytesTx, IPBytesRx uint64
	First, Last          int64 // packet timestamps, Unix nanoseconds
	// App is the flow's application-protocol detection state (a copy); in a
	// light snapshot (Shard.Snapshot) it is empty and AppLabel names the
	// protocol instead.
	App app.State
	// AppLabel is the application protocol's name in a light snapshot, and
	// AppLabelGuess whether that name is a port-based guess.
	AppLabel      string
	AppLabelGuess bool
}

// AppName returns the application protocol to show ("HTTP", "HTTPS", "DNS",
// ..., "Unknown").
func (r *Record) AppName() string {
	if r.AppLabel != "" {
		return r.AppLabel
	}
	return r.App.Name()
}

// CopyOver sets *r to *src, for an r whose App arena is zero past its used
// bytes (a zeroed Record, or one that CopyOver or a shard's emit wrote, as
// src is): r is then the bytes a whole copy makes, its arena zero past its
// used bytes too, but the lines of the arena past the bytes src and r use
// are neither read nor written (app.State.CopyOver). A sink that keeps
// copies of the records it is handed (the flow history's group sink)
// copies an ended flow's few used lines, not all of its 584 bytes.
func (r *Record) CopyOver(src *Record) {
	*(*[fixedBytes]byte)(unsafe.Pointer(r)) = *(*[fixedBytes]byte)(unsafe.Pointer(src))
	r.App.CopyOver(&src.App)
	r.AppLabel, r.AppLabelGuess = src.AppLabel, src.AppLabelGuess
}

// fixedBytes is the part of a Record before App, which holds no pointers
// (TestRecordFixedNoPointers): CopyOver copies it as bytes.
const fixedBytes = unsafe.Offsetof(Record{}.App)

// AppNameIDs bounds AppNameID.
const AppNameIDs = app.NameIDs

// AppNameID returns a small number (below AppNameIDs) for AppName, the same
// for two records exactly when their AppName is, and true; false for a
// record with an AppLabel. A table by name indexes by it without building
// the name (app.State.NameID).
func (r *Record) AppNameID() (int, bool) {
	if r.AppLabel != "" {
		return 0, false
	}
	return r.App.NameID(), true
}

// AppGuess reports that AppName is a port-based guess: no payload of the
// flow matched a detector, the name comes from the server port.
func (r *Record) AppGuess() bool {
	if r.AppLabel != "" {
		return r.AppLabelGuess
	}
	return r.App.Guess
}

// ProtoName returns the transport protocol's name ("TCP", "UDP", "ICMP", ...)
// or its number as text.
func ProtoName(p uint8) string {
	switch p {
	case 6:
		return "TCP"
	case 17:
		return "UDP"
	case 1:
		return "ICMP"
	case 58:
		return "ICMPv6"
	case 132:
		return "SCTP"
	case 47:
		return "GRE"
	case 50:
		return "ESP"
	case 136:
		return "UDPLite"
	case 33:
		return "DCCP"
	case 2:
		return "IGMP"
	case 89:
		return "OSPF"
	}
	return protoNumbers[p]
}

var protoNumbers = func() (t [256]string) {
	for i := range t {
		t[i] = itoa(i)
	}
	return t
}()

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
