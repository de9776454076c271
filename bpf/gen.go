package bpf

//go:generate go tool bpf2go -tags linux -type frag_key -target bpfel fanout fanout.c -- -I/usr/include/x86_64-linux-gnu -O2 -Wall
