// Command replay is NetSentry's replay benchmark (make bench).
//
// It writes a deterministic synthetic trace with package bench/trafficgen
// (or takes one with -trace), then measures on that same file, in the same
// run and each -runs times: the netsentry binary replaying it as a child
// process (CPU from the child's rusage, wall time, max RSS); the same
// pipeline in this process (engine.Replay into a flowtable shard, counting
// allocations per packet: cold, warm in steady state with the exporter, and
// bare without it); and the peers
// `tcpdump -r FILE -w /dev/null` and `ndpiReader -q -i FILE`. It prints the
// medians and ranges, our CPU ratio to each peer, and a verdict against the
// targets of issue 3: no more CPU than tcpdump, at most a fifth of
// ndpiReader's, 0 allocations per packet in steady state, and an aim of
// 100 ns per packet.
//
// Progress goes to stderr, the table to stdout.
//
// Two flags are left out of -h, for whoever profiles NetSentry:
// -cpuprofile FILE writes a CPU profile of this process during the runs (the
// in-process passes carry the pprof label pass=cold|warm|bare; children are
// not in it), and -memprofile FILE records every allocation made during the
// runs (go tool pprof -sample_index=alloc_objects).
//
// Threading and lifetimes: everything runs on the main goroutine, one
// measurement at a time (children are never run in parallel); the temporary
// directory holding the trace and the built binary is removed at the end
// unless -keep is given.
package main
