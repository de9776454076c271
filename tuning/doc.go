// Package tuning checks, and where it is safe sets, what the host does that
// hurts capture accuracy and speed: NIC offloads that merge packets
// (GRO/LRO/TSO/GSO), NIC ring sizes, IRQ affinity against the CPUs capture
// workers run on, rp_filter, and the memlock limit. Each finding carries the
// command that fixes it.
//
// Threading: the functions are independent and may run concurrently.
// Files are read under Options.Proc (normally /proc), so tests can point it
// at a fixture tree; ethtool requests go to the interfaces of the calling
// thread's network namespace.
package tuning
