package app

// A small capture replayer for the tests: it reads pcap and pcapng files
// with gopacket's pcapgo, peels link, VLAN, PPPoE, MPLS, GRE/ERSPAN and IP
// headers with the few lines below, and feeds each flow's payloads to a
// State in capture order, as the flow table will. It is test code only.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"os"
	"sort"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// endpoint is one side of a flow.
type endpoint struct {
	addr netip.Addr
	port uint16
}

func (e endpoint) less(o endpoint) bool {
	if c := e.addr.Compare(o.addr); c != 0 {
		return c < 0
	}
	return e.port < o.port
}

// pairKey identifies a flow as tshark's conversation tables do: transport
// and the unordered endpoint pair (no VLAN).
type pairKey struct {
	l4   uint8
	a, b endpoint
}

func makePair(l4 uint8, x, y endpoint) pairKey {
	if y.less(x) {
		x, y = y, x
	}
	return pairKey{l4, x, y}
}

// flowKey adds the VLAN ids, as a VLAN-aware flow table keys flows.
type flowKey struct {
	pair pairKey
	vlan uint32
}

// frame is the transport view of one captured frame.
type frame struct {
	l4       uint8
	src, dst endpoint
	vlan     uint32
	payload  []byte
}

// replayFlow is one flow of a replay.
type replayFlow struct {
	key       flowKey
	initiator endpoint
	st        State
	order     int
	frames    [2][]int // frame numbers of the payload packets, per direction
}

// replay is the result of feeding one capture.
type replay struct {
	flows  []*replayFlow
	byPair map[pairKey][]*replayFlow
}

// readCapture calls fn for each frame of a pcap or pcapng file, with its link
// type, until the file ends or is damaged (damage is not an error here: the
// good frames before it are what tshark reports too).
func readCapture(path string, fn func(link layers.LinkType, data []byte)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	magic, err := br.Peek(4)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	if binary.LittleEndian.Uint32(magic) == 0x0a0d0d0a {
		r, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true, SkipUnknownVersion: true})
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		for {
			data, ci, err := r.ReadPacketData()
			if err != nil {
				return nil
			}
			link := r.LinkType()
			if len(ci.AncillaryData) > 0 {
				if lt, ok := ci.AncillaryData[0].(layers.LinkType); ok {
					link = lt
				}
			}
			fn(link, data)
		}
	}
	r, err := pcapgo.NewReader(br)
	if err != nil {
		return err
	}
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			return nil
		}
		fn(r.LinkType(), data)
	}
}

// replayFile feeds every flow of a capture to its own State, using pool for
// reassembly (nil: none), and releases the States at the end.
func replayFile(path string, pool *Pool) (*replay, error) {
	rp := &replay{byPair: map[pairKey][]*replayFlow{}}
	byKey := map[flowKey]*replayFlow{}
	num := 0
	err := readCapture(path, func(link layers.LinkType, data []byte) {
		num++
		fr, ok := decodeFrame(link, data)
		if !ok {
			return
		}
		k := flowKey{makePair(fr.l4, fr.src, fr.dst), fr.vlan}
		fl := byKey[k]
		if fl == nil {
			fl = &replayFlow{key: k, initiator: fr.src, order: len(rp.flows)}
			byKey[k] = fl
			rp.flows = append(rp.flows, fl)
			rp.byPair[k.pair] = append(rp.byPair[k.pair], fl)
		}
		if len(fr.payload) > 0 {
			d := 0
			if fr.src != fl.initiator {
				d = 1
			}
			fl.frames[d] = append(fl.frames[d], num)
		}
		fl.st.Feed(pool, fr.payload, fr.src == fl.initiator, fr.l4, fr.src.port, fr.dst.port)
	})
	for _, fl := range rp.flows {
		fl.st.Release(pool)
	}
	sort.SliceStable(rp.flows, func(i, j int) bool { return rp.flows[i].order < rp.flows[j].order })
	return rp, err
}

// decodeFrame finds the innermost TCP or UDP header of a frame.
func decodeFrame(link layers.LinkType, b []byte) (frame, bool) {
	var fr frame
	switch link {
	case layers.LinkTypeEthernet:
		return decodeEther(b, &fr)
	case layers.LinkTypeNull, layers.LinkTypeLoop:
		if len(b) < 4 {
			return fr, false
		}
		return decodeIP(b[4:], &fr)
	case layers.LinkTypeRaw, 12, 14, layers.LinkTypeIPv4, layers.LinkTypeIPv6:
		return decodeIP(b, &fr)
	case layers.LinkTypePPP: // address and control bytes, maybe; then the protocol
		if len(b) >= 2 && b[0] == 0xff && b[1] == 0x03 {
			b = b[2:]
		}
		if len(b) < 2 {
			return fr, false
		}
		switch binary.BigEndian.Uint16(b) {
		case 0x0021, 0x0057:
			return decodeIP(b[2:], &fr)
		}
	case layers.LinkTypeLinuxSLL:
		if len(b) < 16 {
			return fr, false
		}
		return decodeEtherType(binary.BigEndian.Uint16(b[14:]), b[16:], &fr)
	case layers.LinkTypeLinuxSLL2:
		if len(b) < 20 {
			return fr, false
		}
		return decodeEtherType(binary.BigEndian.Uint16(b[0:]), b[20:], &fr)
	case 239: // NFLOG: 4-byte header, then TLVs; type 9 holds the packet
		if len(b) < 4 {
			return fr, false
		}
		for t := b[4:]; len(t) >= 4; {
			l := int(binary.LittleEndian.Uint16(t))
			typ := binary.LittleEndian.Uint16(t[2:])
			if l < 4 || l > len(t) {
				return fr, false
			}
			if typ == 9 {
				return decodeIP(t[4:l], &fr)
			}
			l = (l + 3) &^ 3
			if l > len(t) {
				return fr, false
			}
			t = t[l:]
		}
	}
	return fr, false
}

func decodeEther(b []byte, fr *frame) (frame, bool) {
	if len(b) < 14 {
		return *fr, false
	}
	return decodeEtherType(binary.BigEndian.Uint16(b[12:]), b[14:], fr)
}

func decodeEtherType(et uint16, b []byte, fr *frame) (frame, bool) {
	for {
		switch et {
		case 0x8100, 0x88a8, 0x9100:
			if len(b) < 4 {
				return *fr, false
			}
			fr.vlan = fr.vlan<<12 | uint32(binary.BigEndian.Uint16(b)&0xfff)
			et, b = binary.BigEndian.Uint16(b[2:]), b[4:]
		case 0x8864: // PPPoE session
			if len(b) < 8 {
				return *fr, false
			}
			proto, hl := uint16(b[6]), 7 // PPP protocol, maybe compressed to one byte
			if proto&1 == 0 {
				proto, hl = binary.BigEndian.Uint16(b[6:]), 8
			}
			switch proto {
			case 0x0021:
				et = 0x0800
			case 0x0057:
				et = 0x86dd
			default:
				return *fr, false
			}
			b = b[hl:]
		case 0x8847, 0x8848: // MPLS
			for {
				if len(b) < 4 {
					return *fr, false
				}
				bottom := b[2]&1 != 0
				b = b[4:]
				if bottom {
					break
				}
			}
			return decodeIP(b, fr)
		case 0x0800, 0x86dd:
			return decodeIP(b, fr)
		default:
			return *fr, false
		}
	}
}

// decodeIP walks IPv4/IPv6 (and what they tunnel) to TCP or UDP. Non-first
// fragments carry no ports and are skipped; payloads are bounded by the IP
// length and by what was captured.
func decodeIP(b []byte, fr *frame) (frame, bool) {
	for depth := 0; depth < 4; depth++ {
		if len(b) < 1 {
			return *fr, false
		}
		var proto uint8
		var src, dst netip.Addr
		switch b[0] >> 4 {
		case 4:
			if len(b) < 20 {
				return *fr, false
			}
			ihl := int(b[0]&0xf) * 4
			total := int(binary.BigEndian.Uint16(b[2:]))
			if ihl < 20 || len(b) < ihl {
				return *fr, false
			}
			if binary.BigEndian.Uint16(b[6:])&0x1fff != 0 {
				return *fr, false
			}
			proto = b[9]
			src = netip.AddrFrom4([4]byte(b[12:16]))
			dst = netip.AddrFrom4([4]byte(b[16:20]))
			if total >= ihl && total < len(b) {
				b = b[:total]
			}
			b = b[ihl:]
		case 6:
			if len(b) < 40 {
				return *fr, false
			}
			plen := int(binary.BigEndian.Uint16(b[4:]))
			proto = b[6]
			src = netip.AddrFrom16([16]byte(b[8:24]))
			dst = netip.AddrFrom16([16]byte(b[24:40]))
			b = b[40:]
			if plen < len(b) {
				b = b[:plen]
			}
			for proto == 0 || proto == 43 || proto == 60 || proto == 44 {
				if len(b) < 8 {
					return *fr, false
				}
				if proto == 44 {
					if binary.BigEndian.Uint16(b[2:])&0xfff8 != 0 {
						return *fr, false
					}
					proto, b = b[0], b[8:]
					continue
				}
				l := (int(b[1]) + 1) * 8
				if l > len(b) {
					return *fr, false
				}
				proto, b = b[0], b[l:]
			}
		default:
			return *fr, false
		}
		switch proto {
		case 6:
			if len(b) < 20 || int(b[12]>>4)*4 < 20 || int(b[12]>>4)*4 > len(b) {
				return *fr, false
			}
			fr.l4 = 6
			fr.src = endpoint{src, binary.BigEndian.Uint16(b)}
			fr.dst = endpoint{dst, binary.BigEndian.Uint16(b[2:])}
			fr.payload = b[int(b[12]>>4)*4:]
			return *fr, true
		case 17:
			if len(b) < 8 {
				return *fr, false
			}
			sp, dp := binary.BigEndian.Uint16(b), binary.BigEndian.Uint16(b[2:])
			if inner, ip, ok := udpTunnel(sp, dp, b[8:]); ok {
				if ip {
					b = inner
					continue
				}
				return decodeEther(inner, fr)
			}
			fr.l4 = 17
			fr.src = endpoint{src, binary.BigEndian.Uint16(b)}
			fr.dst = endpoint{dst, binary.BigEndian.Uint16(b[2:])}
			p := b[8:]
			if ul := int(binary.BigEndian.Uint16(b[4:])); ul >= 8 && ul-8 < len(p) {
				p = p[:ul-8]
			}
			fr.payload = p
			return *fr, true
		case 4, 41: // IP in IP
			continue
		case 47: // GRE
			if len(b) < 4 {
				return *fr, false
			}
			flags := binary.BigEndian.Uint16(b)
			pt := binary.BigEndian.Uint16(b[2:])
			hl := 4
			for _, bit := range []uint16{0x8000, 0x2000, 0x1000} { // checksum, key, sequence
				if flags&bit != 0 {
					hl += 4
				}
			}
			if len(b) < hl {
				return *fr, false
			}
			b = b[hl:]
			switch pt {
			case 0x0800, 0x86dd:
				continue
			case 0x6558:
				return decodeEther(b, fr)
			case 0x88be: // ERSPAN type II
				if len(b) < 8 {
					return *fr, false
				}
				return decodeEther(b[8:], fr)
			case 0x22eb: // ERSPAN type III
				if len(b) < 12 {
					return *fr, false
				}
				hl := 12
				if b[11]&1 != 0 {
					hl += 8
				}
				if len(b) < hl {
					return *fr, false
				}
				return decodeEther(b[hl:], fr)
			}
			return *fr, false
		default:
			return *fr, false
		}
	}
	return *fr, false
}

// udpTunnel returns what a GTP-U (port 2152, an IP packet: ip is true) or
// VXLAN (port 4789, an Ethernet frame) datagram carries.
func udpTunnel(sp, dp uint16, b []byte) (inner []byte, ip, ok bool) {
	switch {
	case (sp == 2152 || dp == 2152) && len(b) >= 8 && b[0]>>5 == 1 && b[1] == 0xff:
		hl := 8
		if b[0]&0x07 != 0 {
			hl = 12
			for next := b[11]; b[0]&0x04 != 0 && next != 0; { // extension headers
				if len(b) < hl+1 || b[hl] == 0 {
					return nil, false, false
				}
				l := int(b[hl]) * 4
				if len(b) < hl+l {
					return nil, false, false
				}
				next = b[hl+l-1]
				hl += l
			}
		}
		if len(b) > hl {
			return b[hl:], true, true
		}
	case dp == 4789 && len(b) > 8+14 && b[0]&0x08 != 0:
		return b[8:], false, true
	}
	return nil, false, false
}

// appStrings returns every string value in the flow's app JSON, lower-cased
// with a trailing dot removed, as compare_app.py reads them.
func appStrings(v any, into map[string]bool) {
	switch x := v.(type) {
	case string:
		into[string(bytes.TrimSuffix(bytes.ToLower([]byte(x)), []byte(".")))] = true
	case map[string]any:
		for _, y := range x {
			appStrings(y, into)
		}
	case []any:
		for _, y := range x {
			appStrings(y, into)
		}
	}
}
