package app

import "crypto/sha256"

// This file holds the little cryptography that QUIC Initial packets need,
// written so that it runs without allocating and without interface calls:
// crypto/aes and crypto/hmac both allocate a cipher or hash object per key,
// and a key here lives for one packet. Nothing secret is processed (Initial
// keys derive from a connection ID sent in clear), so the table-driven AES
// below need not be constant-time. Tests check every function against the
// standard library and RFC 9001's vectors.

// aesSbox and the T-tables are computed once at start-up.
var (
	aesSbox            [256]byte
	te0, te1, te2, te3 [256]uint32
)

func init() {
	// The S-box from the multiplicative inverse in GF(2^8) and the affine
	// map (FIPS 197 section 5.1.1), walking the field with generator 3.
	p, q := byte(1), byte(1)
	for {
		p = p ^ p<<1 ^ (p>>7)*0x1b // p *= 3
		q ^= q << 1                // q /= 3
		q ^= q << 2
		q ^= q << 4
		if q&0x80 != 0 {
			q ^= 0x09
		}
		x := q ^ rotl8(q, 1) ^ rotl8(q, 2) ^ rotl8(q, 3) ^ rotl8(q, 4)
		aesSbox[p] = x ^ 0x63
		if p == 1 {
			break
		}
	}
	aesSbox[0] = 0x63
	for i := range 256 {
		s := aesSbox[i]
		s2 := xtime(s)
		w := uint32(s2)<<24 | uint32(s)<<16 | uint32(s)<<8 | uint32(s2^s)
		te0[i] = w
		te1[i] = w>>8 | w<<24
		te2[i] = w>>16 | w<<16
		te3[i] = w>>24 | w<<8
	}
}

func rotl8(x byte, n uint) byte { return x<<n | x>>(8-n) }

// xtime multiplies by x (that is, 2) in GF(2^8).
func xtime(b byte) byte { return b<<1 ^ (b>>7)*0x1b }

// aes128 is an AES-128 key schedule, for encryption only (header protection
// and counter mode need no decryption).
type aes128 struct{ rk [44]uint32 }

func subWord(w uint32) uint32 {
	return uint32(aesSbox[w>>24])<<24 | uint32(aesSbox[w>>16&0xff])<<16 |
		uint32(aesSbox[w>>8&0xff])<<8 | uint32(aesSbox[w&0xff])
}

// init expands a 16-byte key (FIPS 197 section 5.2).
func (c *aes128) init(key []byte) {
	for i := range 4 {
		c.rk[i] = be32(key[4*i:])
	}
	rcon := byte(1)
	for i := 4; i < 44; i++ {
		t := c.rk[i-1]
		if i%4 == 0 {
			t = subWord(t<<8|t>>24) ^ uint32(rcon)<<24
			rcon = xtime(rcon)
		}
		c.rk[i] = c.rk[i-4] ^ t
	}
}

// encrypt enciphers one 16-byte block from src into dst.
func (c *aes128) encrypt(dst, src []byte) {
	_, _ = dst[15], src[15]
	s0 := be32(src[0:]) ^ c.rk[0]
	s1 := be32(src[4:]) ^ c.rk[1]
	s2 := be32(src[8:]) ^ c.rk[2]
	s3 := be32(src[12:]) ^ c.rk[3]
	for r := 1; r < 10; r++ {
		k := c.rk[4*r : 4*r+4]
		t0 := te0[s0>>24] ^ te1[s1>>16&0xff] ^ te2[s2>>8&0xff] ^ te3[s3&0xff] ^ k[0]
		t1 := te0[s1>>24] ^ te1[s2>>16&0xff] ^ te2[s3>>8&0xff] ^ te3[s0&0xff] ^ k[1]
		t2 := te0[s2>>24] ^ te1[s3>>16&0xff] ^ te2[s0>>8&0xff] ^ te3[s1&0xff] ^ k[2]
		t3 := te0[s3>>24] ^ te1[s0>>16&0xff] ^ te2[s1>>8&0xff] ^ te3[s2&0xff] ^ k[3]
		s0, s1, s2, s3 = t0, t1, t2, t3
	}
	last := func(a, b, c, d uint32) uint32 {
		return uint32(aesSbox[a>>24])<<24 | uint32(aesSbox[b>>16&0xff])<<16 |
			uint32(aesSbox[c>>8&0xff])<<8 | uint32(aesSbox[d&0xff])
	}
	putBE32(dst[0:], last(s0, s1, s2, s3)^c.rk[40])
	putBE32(dst[4:], last(s1, s2, s3, s0)^c.rk[41])
	putBE32(dst[8:], last(s2, s3, s0, s1)^c.rk[42])
	putBE32(dst[12:], last(s3, s0, s1, s2)^c.rk[43])
}

func putBE32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

// gcmKeystreamXOR deciphers (or enciphers) src into dst with AES-GCM's
// counter mode for the 12-byte nonce: block i uses counter i+2 (RFC 5116,
// NIST SP 800-38D). The authentication tag is not checked; see quicInitial.
func (c *aes128) gcmKeystreamXOR(dst, src []byte, nonce *[12]byte) {
	var ctr, ks [16]byte
	copy(ctr[:], nonce[:])
	n := uint32(2)
	for len(src) > 0 {
		putBE32(ctr[12:], n)
		c.encrypt(ks[:], ctr[:])
		k := min(16, len(src))
		for i := range k {
			dst[i] = src[i] ^ ks[i]
		}
		dst, src = dst[k:], src[k:]
		n++
	}
}

// hmacSHA256 returns HMAC-SHA256(key, msg) (RFC 2104) for a key of at most
// 64 bytes and a message of at most 128 bytes, which is all HKDF needs here.
func hmacSHA256(key, msg []byte) [32]byte {
	var k [64]byte
	copy(k[:], key)
	var in [64 + 128]byte
	for i := range k {
		in[i] = k[i] ^ 0x36
	}
	n := copy(in[64:], msg)
	inner := sha256.Sum256(in[:64+n])
	var out [64 + 32]byte
	for i := range k {
		out[i] = k[i] ^ 0x5c
	}
	copy(out[64:], inner[:])
	return sha256.Sum256(out[:])
}

// hkdfExpandLabel is TLS 1.3's HKDF-Expand-Label(secret, label, "", length)
// with SHA-256 (RFC 8446 section 7.1) for lengths up to 32 bytes: one HMAC
// block.
func hkdfExpandLabel(secret []byte, label string, length int) [32]byte {
	var info [2 + 1 + 6 + 16 + 1 + 1]byte
	info[0], info[1] = byte(length>>8), byte(length)
	info[2] = byte(6 + len(label))
	n := 3 + copy(info[3:], "tls13 ")
	n += copy(info[n:], label)
	info[n] = 0 // empty context
	info[n+1] = 1
	return hmacSHA256(secret, info[:n+2])
}
