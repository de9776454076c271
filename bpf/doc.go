// Package bpf owns NetSentry's kernel-side packet programs and their loaders.
//
// Fanout is the PACKET_FANOUT_EBPF program (fanout.c, compiled by bpf2go into
// the committed fanout_bpfel.go and fanout_bpfel.o; regenerate with
// `go generate ./bpf`): it returns, for each frame, the capture queue its
// connection belongs to, so both directions of a connection reach the same
// worker. CompileFilter turns a tcpdump filter expression into classic BPF
// for SO_ATTACH_FILTER (libpcap's compiler, so it needs a cgo build).
//
// Threading: a loaded Fanout is immutable and may be shared; Close it once,
// after the sockets that use it are closed (the kernel keeps its own
// reference while a fan-out group holds the program).
//
// Lifetimes: the LRU map that steers IP fragments lives as long as the
// Fanout; its entries age out by themselves.
package bpf
