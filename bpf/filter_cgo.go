//go:build cgo && (linux || darwin || freebsd)

package bpf

import (
	"fmt"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcap"
)

// CompileFilter compiles expr, a tcpdump filter expression, for frames of
// link type link (pcap's LINKTYPE_* numbering: 1 Ethernet, 101 raw IP) cut to snaplen bytes, with libpcap's compiler. The program returns
// snaplen for a frame it accepts and 0 for one it rejects. A bad expression
// gives an error carrying libpcap's message.
func CompileFilter(expr string, link uint16, snaplen int) ([]Instruction, error) {
	ins, err := pcap.CompileBPFFilter(layers.LinkType(link), snaplen, expr)
	if err != nil {
		return nil, fmt.Errorf("compile filter %q: %w", expr, err)
	}
	out := make([]Instruction, len(ins))
	for i, in := range ins {
		out[i] = Instruction{Code: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	return out, nil
}
