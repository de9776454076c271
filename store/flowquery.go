package store

import (
	"net/netip"
	"time"
)

// FlowQuery as the contract of issue 11 writes it; the flow history
// (flows.go) owns it, and this file goes when that lands.
type FlowQuery struct {
	Start, End  time.Time  // by the record's last_seen; zero: open
	IP          netip.Addr // source or destination; invalid: any
	Port        int        // source or destination; -1: any
	Protocol    string     // "TCP", "UDP", ... ; "": any
	AppProtocol string     // application_protocol; "": any
	Limit       int        // 1..1000
	Cursor      string     // from the previous page; "": first page
}
