package app

import "strings"

// BufSize is the size of one reassembly buffer: the most bytes of a flow's
// first client message (TLS ClientHello, HTTP request header block, QUIC
// CRYPTO stream) that detection collects when the message spans several
// packets.
const BufSize = 4096

// A slot of the pool holds the reassembly buffer, then (QUIC only) a bitmap
// of which CRYPTO-stream bytes arrived and the client's original Destination
// Connection ID, from which every client Initial's keys derive.
const (
	slotBitmap = BufSize                  // BufSize/8 bytes, one bit per buffer byte
	slotDCID   = slotBitmap + BufSize/8   // 1 length byte, then up to 20 bytes
	slotSize   = slotDCID + 1 + maxCIDLen // bytes per slot
)

// Pool is a slab of reassembly buffers shared by the flows of one flow-table
// shard. A State that needs to collect a message over several packets takes
// a slot for the few packets that takes and gives it back as soon as the
// message is complete, so a few hundred slots serve a shard of any size.
//
// A Pool belongs to one goroutine (the shard's worker); it has no lock. A
// State must always be fed with the same Pool. Slots are never leaked: when
// none is free, one in use is taken back from its holder (counted in
// Steals), whose detection then goes on without it, from single
// packets. Callers should still call State.Release when they drop a flow.
// Slots are taken back in round-robin order of slot number.
type Pool struct {
	mem    []byte   // len(owner) slots of slotSize bytes
	owner  []uint32 // ticket of the State holding each slot, 0 when free
	free   []uint32 // free slot numbers (a stack)
	next   uint32   // where the next steal happens (round robin)
	ticket uint32   // last ticket handed out
	// Steals counts slots taken back from a flow that still held one. A
	// steadily growing count says the pool is too small for the shard's rate
	// of new flows.
	Steals uint64
	// off marks detectors switched off (network_analysis.protocols).
	off [numProto]bool
	// name is where DNS messages' names are decoded (dnsFeed).
	name nameBuf
}

// Enable switches on the detectors of exactly the protocols listed (every
// detector is on in a new Pool) for all States fed with p. A protocol whose
// detector is off is reported by its port guess only. Names are those of
// Proto.String, case-insensitive; "dns" covers mDNS and LLMNR.
// Unknown names are returned (they switch nothing).
func (p *Pool) Enable(names []string) (unknown []string) {
	for i := range p.off {
		p.off[i] = true
	}
	p.off[Unknown] = false
	for _, n := range names {
		found := false
		for i := Proto(1); i < numProto; i++ {
			if strings.EqualFold(n, protoNames[i]) || strings.EqualFold(n, jsonKeys[i]) {
				p.off[i] = false
				found = true
			}
		}
		if !found {
			unknown = append(unknown, n)
		}
	}
	return unknown
}

// on reports whether the detector of x is on (always, without a Pool).
func (p *Pool) on(x Proto) bool { return p == nil || !p.off[x] }

// PoolBytes is the memory a Pool of n reassembly buffers holds: slotSize
// (4,629) bytes of buffer, bitmap and connection ID plus 8 bytes of
// bookkeeping per buffer. It never grows.
func PoolBytes(n int) int { return max(n, 1) * (slotSize + 8) }

// NewPool returns a pool of n reassembly buffers (PoolBytes(n): n*~4.6 KiB).
// n < 1 is taken as 1.
func NewPool(n int) *Pool {
	if n < 1 {
		n = 1
	}
	p := &Pool{
		mem:   make([]byte, n*slotSize),
		owner: make([]uint32, n),
		free:  make([]uint32, n),
	}
	for i := range p.free {
		p.free[i] = uint32(n - 1 - i)
	}
	return p
}

// acquire hands out a slot and the ticket that proves ownership of it. The
// slot's bitmap is cleared.
func (p *Pool) acquire() (slot, ticket uint32) {
	if n := len(p.free); n > 0 {
		slot = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		slot = p.next
		p.next++
		if int(p.next) == len(p.owner) {
			p.next = 0
		}
		p.Steals++
	}
	p.ticket++
	if p.ticket == 0 {
		p.ticket = 1
	}
	p.owner[slot] = p.ticket
	m := p.mem[int(slot)*slotSize : int(slot+1)*slotSize]
	clear(m[slotBitmap:])
	return slot, p.ticket
}

// slot returns the memory of slot if ticket still owns it, else nil.
func (p *Pool) slot(slot, ticket uint32) []byte {
	if p == nil || int(slot) >= len(p.owner) || p.owner[slot] != ticket || ticket == 0 {
		return nil
	}
	return p.mem[int(slot)*slotSize : int(slot+1)*slotSize : int(slot+1)*slotSize]
}

// release gives slot back if ticket still owns it.
func (p *Pool) release(slot, ticket uint32) {
	if p.slot(slot, ticket) == nil {
		return
	}
	p.owner[slot] = 0
	p.free = append(p.free, slot) // never grows: a slot is pushed at most once
}

// Free returns how many slots are free.
func (p *Pool) Free() int { return len(p.free) }
