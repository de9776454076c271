package app

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readHex(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return mustHex(t, string(b))
}

// TestAESMatchesStdlib compares the package's AES-128 with crypto/aes.
func TestAESMatchesStdlib(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var key, in, got, want [16]byte
		for i := range key {
			key[i], in[i] = byte(r.Uint32()), byte(r.Uint32())
		}
		var c aes128
		c.init(key[:])
		c.encrypt(got[:], in[:])
		std, _ := aes.NewCipher(key[:])
		std.Encrypt(want[:], in[:])
		if got != want {
			t.Fatalf("key % x: got % x, crypto/aes % x", key, got, want)
		}
	}
	// FIPS 197 appendix C.1.
	var c aes128
	c.init(mustHex(t, "000102030405060708090a0b0c0d0e0f"))
	var out [16]byte
	c.encrypt(out[:], mustHex(t, "00112233445566778899aabbccddeeff"))
	if hex.EncodeToString(out[:]) != "69c4e0d86a7b0430d8cdb78070b4c55a" {
		t.Fatalf("FIPS 197 C.1: %x", out)
	}
}

// TestHMACAndHKDFMatchStdlib compares the stack-only HMAC and
// HKDF-Expand-Label with crypto/hmac and crypto/hkdf.
func TestHMACAndHKDFMatchStdlib(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for n := range 40 {
		key := make([]byte, n%65)
		msg := make([]byte, (n*7)%129)
		for i := range key {
			key[i] = byte(r.Uint32())
		}
		for i := range msg {
			msg[i] = byte(r.Uint32())
		}
		m := hmac.New(sha256.New, key)
		m.Write(msg)
		if got := hmacSHA256(key, msg); !bytes.Equal(got[:], m.Sum(nil)) {
			t.Fatalf("hmac key %d msg %d bytes differs", len(key), len(msg))
		}
	}
	secret := mustHex(t, "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea")
	for _, c := range []struct {
		label string
		n     int
	}{{"quic key", 16}, {"quic iv", 12}, {"quic hp", 16}, {"client in", 32}, {"quicv2 key", 16}} {
		info := binary.BigEndian.AppendUint16(nil, uint16(c.n))
		info = append(info, byte(6+len(c.label)))
		info = append(info, "tls13 "+c.label...)
		info = append(info, 0)
		want, err := hkdf.Expand(sha256.New, secret, string(info), c.n)
		if err != nil {
			t.Fatal(err)
		}
		got := hkdfExpandLabel(secret, c.label, c.n)
		if !bytes.Equal(got[:c.n], want) {
			t.Errorf("%s: % x, crypto/hkdf % x", c.label, got[:c.n], want)
		}
	}
}

// TestQUICKeysRFC9001 checks the key schedule against RFC 9001 appendix A.1.
func TestQUICKeysRFC9001(t *testing.T) {
	dcid := mustHex(t, "8394c8f03e515708")
	initial := hmacSHA256(saltV1[:], dcid)
	if hex.EncodeToString(initial[:]) != "7db5df06e7a69e432496adedb00851923595221596ae2ae9fb8115c1e9ed0a44" {
		t.Fatalf("initial_secret %x", initial)
	}
	client := hkdfExpandLabel(initial[:], "client in", 32)
	if hex.EncodeToString(client[:]) != "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea" {
		t.Fatalf("client_initial_secret %x", client)
	}
	for label, want := range map[string]string{"quic key": "1f369613dd76d5467730efcbe3b1a22d", "quic iv": "fa044b2f42a3fd3b46fb255c", "quic hp": "9f50449e04a0e810283a1e9933adedd2"} {
		n := len(want) / 2
		if got := hkdfExpandLabel(client[:], label, n); hex.EncodeToString(got[:n]) != want {
			t.Errorf("%s %x, RFC %s", label, got[:n], want)
		}
	}
	// RFC 9369 appendix A.1: the v2 client keys. (The AES-GCM tag check of
	// the A.2 packet in TestQUICInitialRFC confirms them independently.)
	initial2 := hmacSHA256(saltV2[:], dcid)
	client2 := hkdfExpandLabel(initial2[:], "client in", 32)
	for label, want := range map[string]string{"quicv2 key": "8b1a0bc121284290a29e0971b5cd045d", "quicv2 iv": "91f73e2351d8fa91660e909f"} {
		n := len(want) / 2
		if got := hkdfExpandLabel(client2[:], label, n); hex.EncodeToString(got[:n]) != want {
			t.Errorf("v2 %s %x, RFC %s", label, got[:n], want)
		}
	}
}

// TestQUICInitialRFC feeds the client Initial packets of RFC 9001 A.2 (v1)
// and RFC 9369 A.2 (v2), whose ClientHello names example.com and offers
// ALPN "alpn".
func TestQUICInitialRFC(t *testing.T) {
	for _, c := range []struct{ file, version string }{
		{"testdata/rfc9001-a2-client-initial.hex", "1"},
		{"testdata/rfc9369-a2-client-initial.hex", "2"},
	} {
		pkt := readHex(t, c.file)
		checkGCMTag(t, pkt, c.version)
		s := run(NewPool(1), 17, 50000, 443, seg{true, string(pkt)})
		m := jsonOf(t, s)
		if s.Proto != QUIC || s.Guess {
			t.Errorf("%s: proto %s guess %v", c.file, s.Proto, s.Guess)
		}
		for k, v := range map[string]string{"version": c.version, "sni": "example.com", "alpn": "alpn"} {
			if got := get(m, "quic", k); got != v {
				t.Errorf("%s: %s = %v, want %s", c.file, k, got, v)
			}
		}
		if ja4, _ := get(m, "quic", "ja4").(string); !strings.HasPrefix(ja4, "q13d0") {
			t.Errorf("%s: ja4 %q", c.file, ja4)
		}
	}
}

// checkGCMTag opens the test vector with crypto/cipher's AES-GCM, which
// verifies the tag: the vector was copied right, and the package's keys,
// header protection removal and deciphering agree with the stdlib's.
func checkGCMTag(t *testing.T, pkt []byte, version string) {
	t.Helper()
	v := uint32(quicV1)
	if version == "2" {
		v = quicV2
	}
	var k quicKeys
	k.derive(v, pkt[6:6+pkt[5]])
	hdrLen := 18 // 1+4+1+8+1+1(token len)+2(length)
	var mask [16]byte
	k.hp.encrypt(mask[:], pkt[hdrLen+4:hdrLen+20])
	hdr := bytes.Clone(pkt[:hdrLen+4])
	hdr[0] ^= mask[0] & 0x0f
	pnLen := int(hdr[0]&3) + 1
	for i := range pnLen {
		hdr[hdrLen+i] ^= mask[1+i]
	}
	hdr = hdr[:hdrLen+pnLen]
	var pn uint64
	for _, b := range hdr[hdrLen:] {
		pn = pn<<8 | uint64(b)
	}
	key, iv, _ := quicKeyIV(t, v, pkt[6:6+pkt[5]])
	blk, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(blk)
	nonce := bytes.Clone(iv)
	for i := range 8 {
		nonce[4+i] ^= byte(pn >> (56 - 8*i))
	}
	plain, err := gcm.Open(nil, nonce, pkt[len(hdr):], hdr)
	if err != nil {
		t.Fatalf("version %s: AES-GCM open: %v", version, err)
	}
	var got [maxQUICPkt]byte
	var n12 [12]byte
	copy(n12[:], nonce)
	k.key.gcmKeystreamXOR(got[:len(plain)], pkt[len(hdr):len(hdr)+len(plain)], &n12)
	if !bytes.Equal(got[:len(plain)], plain) {
		t.Fatalf("version %s: keystream differs from crypto/cipher's GCM", version)
	}
}

// quicKeyIV derives the client Initial key, iv and header protection key
// with crypto/hkdf.
func quicKeyIV(t testing.TB, v uint32, dcid []byte) (key, iv, hp []byte) {
	salt, _ := initialSalt(v)
	initial, err := hkdf.Extract(sha256.New, dcid, salt[:])
	if err != nil {
		t.Fatal(err)
	}
	label := func(secret []byte, l string, n int) []byte {
		info := binary.BigEndian.AppendUint16(nil, uint16(n))
		info = append(info, byte(6+len(l)))
		info = append(info, "tls13 "+l...)
		info = append(info, 0)
		out, err := hkdf.Expand(sha256.New, secret, string(info), n)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	client := label(initial, "client in", 32)
	prefix := "quic "
	if v == quicV2 {
		prefix = "quicv2 "
	}
	return label(client, prefix+"key", 16), label(client, prefix+"iv", 12), label(client, prefix+"hp", 16)
}

// sealInitial builds a protected v1 client Initial carrying frames, with
// crypto/cipher's AES-GCM and crypto/aes header protection.
func sealInitial(t testing.TB, dcid []byte, pn uint32, frames []byte) []byte {
	for len(frames) < 1162 {
		frames = append(frames, 0) // PADDING
	}
	key, iv, hpKey := quicKeyIV(t, quicV1, dcid)
	hdr := []byte{0xc3, 0, 0, 0, 1, byte(len(dcid))}
	hdr = append(hdr, dcid...)
	hdr = append(hdr, 0, 0) // no SCID, no token
	length := len(frames) + 4 + 16
	hdr = append(hdr, 0x40|byte(length>>8), byte(length))
	pnOff := len(hdr)
	hdr = binary.BigEndian.AppendUint32(hdr, pn)
	blk, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(blk)
	nonce := bytes.Clone(iv)
	for i := range 4 {
		nonce[8+i] ^= byte(pn >> (24 - 8*i))
	}
	pkt := gcm.Seal(bytes.Clone(hdr), nonce, frames, hdr)
	hp, _ := aes.NewCipher(hpKey)
	var mask [16]byte
	hp.Encrypt(mask[:], pkt[pnOff+4:pnOff+20])
	pkt[0] ^= mask[0] & 0x0f
	for i := range 4 {
		pkt[pnOff+i] ^= mask[1+i]
	}
	return pkt
}

func cryptoFrame(off int, data []byte) []byte {
	f := []byte{0x06, 0x80 | byte(off>>24&0x3f), byte(off >> 16), byte(off >> 8), byte(off)}
	f = append(f, 0x40|byte(len(data)>>8), byte(len(data)))
	return append(f, data...)
}

// TestQUICMultiPacketHello spreads a ClientHello over two Initial packets,
// each with shuffled CRYPTO frames, PING and PADDING (as Chrome does), and
// checks the result equals the one-packet parse; a retransmitted packet and
// a server Initial in between change nothing.
func TestQUICMultiPacketHello(t *testing.T) {
	ch := helloMsg(0x0303, []uint16{0x1301, 0x1302, 0x1303}, []ext{
		sniExt("split.example"), alpnExt("h3"), {0x002b, vec8(u16s(0x0304))},
		{0x000d, vec16(u16s(0x0403, 0x0804))}, {0x000a, vec16(u16s(0x001d))},
		{0x0039, make([]byte, 1400)}, // big transport parameters: > 1 packet
	})
	dcid := mustHex(t, "0011223344556677")
	one := run(NewPool(1), 17, 50000, 443, seg{true, string(sealInitial(t, dcid, 0, cryptoFrame(0, ch)))})
	want := string(one.AppendJSON(nil))
	if !strings.Contains(want, "split.example") || !strings.Contains(want, `"ja4"`) {
		t.Fatalf("one packet: %s", want)
	}
	half := len(ch) / 2
	var f1, f2 []byte
	f1 = append(f1, cryptoFrame(half/2, ch[half/2:half])...)
	f1 = append(f1, 0x01, 0x00, 0x00)
	f1 = append(f1, cryptoFrame(0, ch[:half/2])...)
	f2 = append(f2, 0x00)
	f2 = append(f2, cryptoFrame(half, ch[half:])...)
	p1, p2 := sealInitial(t, dcid, 0, f1), sealInitial(t, dcid, 1, f2)
	srv := bytes.Clone(p1)
	srv[30] ^= 0xff // not decipherable: must be ignored
	for _, order := range [][][]byte{{p1, p2}, {p2, p1}, {p1, p1, srv, p2}} {
		p := NewPool(1)
		s := new(State)
		for _, pkt := range order {
			s.Feed(p, pkt, true, 17, 50000, 443)
		}
		s.Release(p)
		if got := string(s.AppendJSON(nil)); got != want {
			t.Errorf("two packets: %s, one packet %s", got, want)
		}
		if p.Free() != 1 {
			t.Errorf("slot kept")
		}
	}
}
