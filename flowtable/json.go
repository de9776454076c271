package flowtable

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"net/netip"
	"strconv"

	"github.com/netsentry/netsentry/decode"
)

// IP returns a as a netip.Addr of the given IP version.
func IP(a *decode.Addr, version uint8) netip.Addr {
	if version == 4 {
		return netip.AddrFrom4([4]byte(a[:4]))
	}
	return netip.AddrFrom16(*a)
}

// AppendConnection appends an unclosed JSON object holding the connection
// fields of the product description (source_ip ... application_protocol,
// with Zeek's conn_state after state);
// the caller adds more fields and the closing brace.
func (r *Record) AppendConnection(b []byte) []byte {
	b = append(b, `{"source_ip":"`...)
	b = IP(&r.Src, r.IPVersion).AppendTo(b)
	b = append(b, `","source_port":`...)
	b = strconv.AppendUint(b, uint64(r.SrcPort), 10)
	b = append(b, `,"dest_ip":"`...)
	b = IP(&r.Dst, r.IPVersion).AppendTo(b)
	b = append(b, `","dest_port":`...)
	b = strconv.AppendUint(b, uint64(r.DstPort), 10)
	b = append(b, `,"protocol":"`...)
	b = append(b, ProtoName(r.Proto)...)
	b = append(b, `","bytes_tx":`...)
	b = strconv.AppendUint(b, r.BytesTx, 10)
	b = append(b, `,"bytes_rx":`...)
	b = strconv.AppendUint(b, r.BytesRx, 10)
	b = append(b, `,"ip_bytes_tx":`...)
	b = strconv.AppendUint(b, r.IPBytesTx, 10)
	b = append(b, `,"ip_bytes_rx":`...)
	b = strconv.AppendUint(b, r.IPBytesRx, 10)
	b = append(b, `,"packets_tx":`...)
	b = strconv.AppendUint(b, r.PacketsTx, 10)
	b = append(b, `,"packets_rx":`...)
	b = strconv.AppendUint(b, r.PacketsRx, 10)
	b = append(b, `,"duration_sec":`...)
	b = strconv.AppendFloat(b, float64(max(r.Last-r.First, 0))/1e9, 'f', -1, 64)
	b = append(b, `,"state":"`...)
	b = append(b, r.State.String()...)
	b = append(b, `","conn_state":"`...)
	b = append(b, r.ConnState.String()...)
	b = append(b, `","application_protocol":"`...)
	b = append(b, r.AppName()...)
	return append(b, '"')
}

// AppendJSON appends r as one JSON object (no newline): the product's
// connection fields (AppendConnection), then the flow record's own (VLAN,
// times, TCP flags, tunnel, end reason, Community ID, app). extra, if not
// nil, is called to append further fields (it must start each with a comma).
func (r *Record) AppendJSON(b []byte, extra func([]byte) []byte) []byte {
	b = r.AppendConnection(b)
	b = append(b, `,"vlan":`...)
	b = strconv.AppendUint(b, uint64(r.VLAN), 10)
	if r.InnerVLAN != 0 {
		b = append(b, `,"inner_vlan":`...)
		b = strconv.AppendUint(b, uint64(r.InnerVLAN), 10)
	}
	b = append(b, `,"ip_version":`...)
	b = strconv.AppendUint(b, uint64(r.IPVersion), 10)
	b = append(b, `,"first_seen":"`...)
	b = AppendRFC3339Nano(b, r.First)
	b = append(b, `","last_seen":"`...)
	b = AppendRFC3339Nano(b, r.Last)
	b = append(b, '"')
	if r.Proto == 6 {
		b = append(b, `,"tcp_flags":"`...)
		b = appendHex8(b, r.FlagsTx|r.FlagsRx)
		b = append(b, `","tcp_flags_tx":"`...)
		b = appendHex8(b, r.FlagsTx)
		b = append(b, `","tcp_flags_rx":"`...)
		b = appendHex8(b, r.FlagsRx)
		b = append(b, '"')
	}
	if r.Tunnel != decode.TunnelNone {
		b = append(b, `,"tunnel":"`...)
		b = append(b, r.Tunnel.String()...)
		b = append(b, '"')
	}
	b = append(b, `,"end_reason":"`...)
	b = append(b, r.End.String()...)
	b = append(b, `","community_id":"`...)
	b = r.AppendCommunityID(b, 0)
	b = append(b, `","app":`...)
	b = r.App.AppendJSON(b)
	if extra != nil {
		b = extra(b)
	}
	return append(b, '}')
}

func appendHex8(b []byte, v uint8) []byte {
	const hex = "0123456789abcdef"
	return append(b, hex[v>>4], hex[v&15])
}

// AppendCommunityID appends the Community ID v1 flow hash of r ("1:" and
// base64 of SHA-1) with the given seed, as Zeek and Suricata print it.
func (r *Record) AppendCommunityID(b []byte, seed uint16) []byte {
	alen := 4
	if r.IPVersion == 6 {
		alen = 16
	}
	src, dst := r.Src[:alen], r.Dst[:alen]
	sp, dp := r.SrcPort, r.DstPort
	oneWay := false
	if r.Proto == 1 || r.Proto == 58 {
		// The ports hold (type, counterpart type or code) already.
		oneWay = decode.ICMPOneWay(uint8(sp), r.Proto == 58)
	}
	if !oneWay && !communityOrdered(src, dst, sp, dp) {
		src, dst, sp, dp = dst, src, dp, sp
	}
	var buf [2 + 16 + 16 + 2 + 4]byte
	binary.BigEndian.PutUint16(buf[0:], seed)
	n := 2
	n += copy(buf[n:], src)
	n += copy(buf[n:], dst)
	buf[n] = r.Proto
	buf[n+1] = 0
	n += 2
	if hasPorts(r.Proto) {
		binary.BigEndian.PutUint16(buf[n:], sp)
		binary.BigEndian.PutUint16(buf[n+2:], dp)
		n += 4
	}
	sum := sha1.Sum(buf[:n])
	b = append(b, "1:"...)
	return base64.StdEncoding.AppendEncode(b, sum[:])
}

func hasPorts(proto uint8) bool {
	switch proto {
	case 1, 6, 17, 58, 132:
		return true
	}
	return false
}

func communityOrdered(a, b []byte, pa, pb uint16) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return pa <= pb
}

// AppendRFC3339Nano appends the UTC time ns nanoseconds after the Unix epoch
// as time.RFC3339Nano formats it (trailing zeros of the fraction dropped,
// no fraction for a whole second), without time's general layout walk:
// a flood of one-packet flows writes two per record. An int64 of
// nanoseconds spans the years 1677..2262, all four-digit.
func AppendRFC3339Nano(b []byte, ns int64) []byte {
	sec, frac := ns/1e9, ns%1e9
	if frac < 0 {
		sec, frac = sec-1, frac+1e9
	}
	days, sod := sec/86400, sec%86400
	if sod < 0 {
		days, sod = days-1, sod+86400
	}
	// Civil date from days since 1970-01-01 (H. Hinnant's days_from_civil
	// inverse, proleptic Gregorian).
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	var t [31]byte
	t[0], t[1], t[2], t[3], t[4] = byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-'
	t[5], t[6], t[7], t[8], t[9], t[10] = byte('0'+m/10), byte('0'+m%10), '-', byte('0'+d/10), byte('0'+d%10), 'T'
	h, mi, sc := sod/3600, sod/60%60, sod%60
	t[11], t[12], t[13], t[14], t[15], t[16], t[17], t[18] = byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10), ':', byte('0'+sc/10), byte('0'+sc%10)
	n := 19
	if frac != 0 {
		t[19] = '.'
		v := uint32(frac)
		for i := 28; i >= 20; i-- {
			t[i] = byte('0' + v%10)
			v /= 10
		}
		n = 29
		for t[n-1] == '0' {
			n--
		}
	}
	t[n] = 'Z'
	return append(b, t[:n+1]...)
}
