package bpf

// Instruction is one classic BPF instruction (struct sock_filter).
type Instruction struct {
	Code uint16
	Jt   uint8
	Jf   uint8
	K    uint32
}

// SnaplenProgram returns the one-instruction program that accepts every
// frame and cuts it to snaplen bytes: what is attached when no filter is
// configured, since a TPACKET_V3 ring has no snaplen of its own.
func SnaplenProgram(snaplen int) []Instruction {
	return []Instruction{{Code: 0x06, K: uint32(snaplen)}} // BPF_RET|BPF_K
}
