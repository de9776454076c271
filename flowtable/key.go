package flowtable

import (
	"encoding/binary"
	"math/bits"

	"github.com/netsentry/netsentry/decode"
)

// Key identifies a bidirectional flow. Its endpoints are ordered (A is the
// lower address, then port), so both directions of a connection map to one
// Key. VLAN ids are part of the key, as in Zeek: the same 5-tuple on two
// VLANs is two flows.
type Key struct {
	A, B            decode.Addr
	PortA, PortB    uint16
	VLAN, InnerVLAN uint16
	Proto           uint8
	IPVersion       uint8
}

// makeKey normalises t into a Key and reports whether t's source is B.
func makeKey(t *decode.Tuple, vlan, inner uint16, k *Key) (srcIsB bool) {
	srcIsB = endpointLess(&t.Dst, t.DstPort, &t.Src, t.SrcPort)
	if srcIsB {
		k.A, k.B, k.PortA, k.PortB = t.Dst, t.Src, t.DstPort, t.SrcPort
	} else {
		k.A, k.B, k.PortA, k.PortB = t.Src, t.Dst, t.SrcPort, t.DstPort
	}
	k.VLAN, k.InnerVLAN, k.Proto, k.IPVersion = vlan, inner, t.Proto, t.IPVersion
	return srcIsB
}

// endpointLess orders (address, port) pairs: address bytes first, then port.
func endpointLess(a *decode.Addr, pa uint16, b *decode.Addr, pb uint16) bool {
	a0, b0 := binary.BigEndian.Uint64(a[0:8]), binary.BigEndian.Uint64(b[0:8])
	if a0 != b0 {
		return a0 < b0
	}
	a1, b1 := binary.BigEndian.Uint64(a[8:16]), binary.BigEndian.Uint64(b[8:16])
	if a1 != b1 {
		return a1 < b1
	}
	return pa < pb
}

const (
	hashSeed = 0x9e3779b97f4a7c15
	hashM1   = 0xa0761d6478bd642f
	hashM2   = 0xe7037ed1a0b428db
)

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hash returns a 32-bit hash of k (wyhash-style multiply-mix of its words).
func (k *Key) hash() uint32 {
	w0 := binary.LittleEndian.Uint64(k.A[0:8])
	w1 := binary.LittleEndian.Uint64(k.A[8:16])
	w2 := binary.LittleEndian.Uint64(k.B[0:8])
	w3 := binary.LittleEndian.Uint64(k.B[8:16])
	// ^ rather than |: the same words (the fields' bits do not overlap),
	// but the compiler merges an | of adjacent fields into one wide load,
	// and a wide load of fields that makeKey has just stored one by one
	// cannot take their bytes from the store buffer: it waits for the
	// stores to retire, a stall of tens of cycles on every packet.
	w4 := uint64(k.PortA) ^ uint64(k.PortB)<<16 ^ uint64(k.VLAN)<<32 ^ uint64(k.InnerVLAN)<<48
	w5 := uint64(k.Proto) ^ uint64(k.IPVersion)<<8
	h := mix(w0^hashM1, w1^hashSeed)
	h = mix(h^w2, w3^hashM2)
	h = mix(h^w4, w5^hashM1)
	return uint32(h ^ h>>32)
}
