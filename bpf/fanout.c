//go:build ignore

// fanout.c: the PACKET_FANOUT_EBPF program that picks the capture queue of a
// frame. It hashes the 5-tuple symmetrically (both directions of a
// connection get the same queue) after any VLAN/QinQ tags, PPPoE session
// and MPLS labels. A fragmented IP datagram goes where its flow goes: the
// first fragment (which carries the ports) is hashed on the 5-tuple and its
// queue remembered by (addresses, protocol, IP id) in an LRU map; later
// fragments take the remembered queue, or hash on the addresses only when
// the first fragment was not seen yet, and the first fragment then takes
// their queue; a repeated first fragment follows the first. UDP tunnels
// (VXLAN, GENEVE, GTP-U) hash on the outer addresses only, so both
// directions of an inner connection, which tunnel endpoints send from
// different source ports, stay together.
//
// The program reads headers from the network header on, so it works on
// live traffic (the kernel has moved the outer VLAN tag to metadata and
// skb->protocol is the next EtherType) and under BPF_PROG_TEST_RUN (tag
// still in the data, skb->protocol 0x8100).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char __license[] SEC("license") = "Dual MIT/GPL";

// nqueues is the number of queues in the fan-out group, set at load.
volatile const __u32 nqueues = 1;

struct frag_key {
	__u32 src[4];
	__u32 dst[4];
	__u32 id;
	__u32 proto;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct frag_key);
	__type(value, __u32);
} frags SEC(".maps");

#define ETH_P_8021AD_ 0x88A8
#define ETH_P_QINQ1_ 0x9100
#define ETH_P_PPPOES_ 0x8864
#define ETH_P_MPLS_UC_ 0x8847
#define ETH_P_MPLS_MC_ 0x8848

#define PACKET_OUTGOING_ 4

#define MAX_TAGS 4
#define MAX_LABELS 4
#define MAX_EXT 6

static __always_inline __u32 mix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x7feb352d;
	h ^= h >> 15;
	h *= 0x846ca68b;
	h ^= h >> 16;
	return h;
}

// endpoint hashes one side of a connection.
static __always_inline __u32 endpoint(const __u32 *a, __u16 port)
{
	__u32 h = mix32(a[0] ^ 0x9e3779b9);
	h = mix32(h ^ a[1]);
	h = mix32(h ^ a[2]);
	h = mix32(h ^ a[3]);
	return mix32(h ^ port);
}

// pick combines the two endpoints' hashes in an order-free way.
static __always_inline __u32 pick(const __u32 *src, const __u32 *dst, __u16 sport, __u16 dport, __u32 proto)
{
	__u32 a = endpoint(src, sport), b = endpoint(dst, dport);
	if (a > b) {
		__u32 t = a;
		a = b;
		b = t;
	}
	__u32 h = mix32(mix32(a ^ proto) + b);
	__u32 n = nqueues;
	if (n == 0)
		return 0;
	return h % n;
}

// load reads len bytes at off from the network header. On receive (and
// under BPF_PROG_TEST_RUN) skb->data is the network header, and
// bpf_skb_load_bytes also reads headers that sit in page fragments (large
// frames from a packet socket or a driver that does not pull headers). On
// transmit skb->data is the MAC header; locally built headers are linear,
// so the network-relative load does.
static __always_inline int load(struct __sk_buff *skb, int out, __u32 off, void *to, __u32 len)
{
	if (out)
		return bpf_skb_load_bytes_relative(skb, off, to, len, BPF_HDR_START_NET);
	return bpf_skb_load_bytes(skb, off, to, len);
}

static __always_inline int has_ports(__u32 proto)
{
	return proto == 6 || proto == 17 || proto == 132 || proto == 136;
}

static __always_inline int is_tunnel_port(__u16 p)
{
	return p == 4789 || p == 6081 || p == 2152;
}

// l4 hashes the flow of an IP packet whose addresses are in k, transport
// protocol proto at offset off. frag: 0 not fragmented, 1 first fragment,
// 2 later fragment.
//
// A datagram's queue is chosen once, by the first of its fragments seen, and
// every other fragment follows it, so that the whole datagram, which the
// flow table reassembles, reaches one queue: a later fragment that comes
// before the first fragment hashes on the addresses only and the first
// fragment follows it; a first fragment that comes again (a repeat, or an
// overlap naming other ports) follows the first copy. A datagram that
// reuses the IP id of one still remembered follows that one too. The
// connection's unfragmented packets may then take another queue; the
// records' counts sum to the connection's.
static __always_inline __u32 l4(struct __sk_buff *skb, int out, struct frag_key *k, __u32 off, __u32 proto, int frag)
{
	__u16 ports[2] = {0, 0};
	if (frag == 2) {
		__u32 *q = bpf_map_lookup_elem(&frags, k);
		if (q)
			return *q;
		__u32 a = pick(k->src, k->dst, 0, 0, 0);
		bpf_map_update_elem(&frags, k, &a, BPF_NOEXIST);
		return a;
	}
	if (frag == 1) {
		__u32 *q = bpf_map_lookup_elem(&frags, k);
		if (q)
			return *q;
	}
	if (has_ports(proto) && load(skb, out, off, ports, 4) == 0) {
		__u16 sp = bpf_ntohs(ports[0]), dp = bpf_ntohs(ports[1]);
		if (proto == 17 && (is_tunnel_port(sp) || is_tunnel_port(dp)))
			sp = dp = 0;
		ports[0] = sp;
		ports[1] = dp;
	} else {
		ports[0] = ports[1] = 0;
	}
	__u32 q = pick(k->src, k->dst, ports[0], ports[1], proto);
	if (frag == 1)
		bpf_map_update_elem(&frags, k, &q, BPF_NOEXIST);
	return q;
}

static __always_inline __u32 ipv4(struct __sk_buff *skb, int out, __u32 off)
{
	__u8 h[20];
	if (load(skb, out, off, h, 20))
		return 0;
	struct frag_key k = {};
	__builtin_memcpy(&k.src[0], &h[12], 4);
	__builtin_memcpy(&k.dst[0], &h[16], 4);
	__u32 proto = h[9];
	__u16 fo = ((__u16)h[6] << 8) | h[7];
	int frag = 0;
	if (fo & 0x3fff) {
		frag = (fo & 0x1fff) ? 2 : 1;
		k.id = ((__u32)h[4] << 8) | h[5];
		k.proto = proto;
	}
	return l4(skb, out, &k, off + (h[0] & 0xf) * 4, proto, frag);
}

static __always_inline __u32 ipv6(struct __sk_buff *skb, int out, __u32 off)
{
	__u8 h[40];
	if (load(skb, out, off, h, 40))
		return 0;
	struct frag_key k = {};
	__builtin_memcpy(k.src, &h[8], 16);
	__builtin_memcpy(k.dst, &h[24], 16);
	__u32 next = h[6];
	int frag = 0;
	off += 40;
#pragma unroll
	for (int i = 0; i < MAX_EXT; i++) {
		__u8 e[8];
		if (next != 0 && next != 43 && next != 44 && next != 60 && next != 51)
			break;
		if (load(skb, out, off, e, 8))
			break;
		if (next == 44) {
			__u16 fo = ((__u16)e[2] << 8) | e[3];
			frag = (fo & 0xfff8) ? 2 : 1;
			__builtin_memcpy(&k.id, &e[4], 4);
			k.proto = 44;
			next = e[0];
			off += 8;
			if (frag == 2)
				break;
			continue;
		}
		if (next == 51)
			off += ((__u32)e[1] + 2) * 4;
		else
			off += ((__u32)e[1] + 1) * 8;
		next = e[0];
	}
	return l4(skb, out, &k, off, next, frag);
}

static __always_inline __u32 by_version(struct __sk_buff *skb, int out, __u32 off)
{
	__u8 v;
	if (load(skb, out, off, &v, 1))
		return 0;
	if ((v >> 4) == 4)
		return ipv4(skb, out, off);
	if ((v >> 4) == 6)
		return ipv6(skb, out, off);
	return 0;
}

SEC("socket")
int fanout(struct __sk_buff *skb)
{
	int out = skb->pkt_type == PACKET_OUTGOING_;
	__u32 proto = bpf_ntohs((__u16)skb->protocol);
	__u32 off = 0;
#pragma unroll
	for (int i = 0; i < MAX_TAGS; i++) {
		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD_ && proto != ETH_P_QINQ1_)
			break;
		__u16 et;
		if (load(skb, out, off + 2, &et, 2))
			return 0;
		proto = bpf_ntohs(et);
		off += 4;
	}
	switch (proto) {
	case ETH_P_IP:
		return ipv4(skb, out, off);
	case ETH_P_IPV6:
		return ipv6(skb, out, off);
	case ETH_P_PPPOES_: {
		__u16 pp;
		if (load(skb, out, off + 6, &pp, 2))
			return 0;
		pp = bpf_ntohs(pp);
		if (pp == 0x0021)
			return ipv4(skb, out, off + 8);
		if (pp == 0x0057)
			return ipv6(skb, out, off + 8);
		return 0;
	}
	case ETH_P_MPLS_UC_:
	case ETH_P_MPLS_MC_:
#pragma unroll
		for (int i = 0; i < MAX_LABELS; i++) {
			__u8 l[4];
			if (load(skb, out, off, l, 4))
				return 0;
			off += 4;
			if (l[2] & 1)
				return by_version(skb, out, off);
		}
		return 0;
	}
	return 0;
}
