// Command trafficgen writes a deterministic synthetic pcap trace for
// NetSentry's benchmarks and prints its ground truth: packets, flows and
// wire bytes, exactly.
//
//	go run ./bench/trafficgen/cmd/trafficgen -packets 1000000 -flows 100000 -seed 1 -out trace.pcap
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/netsentry/netsentry/bench/trafficgen"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("trafficgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	packets := fs.Int("packets", trafficgen.DefaultPackets, "exact number of packets to write")
	flows := fs.Int("flows", trafficgen.DefaultFlows, "exact number of flows to write")
	seed := fs.Uint64("seed", 1, "seed of the random source (same seed, same bytes)")
	out := fs.String("out", "trace.pcap", "pcap file to write")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "trafficgen: unexpected argument %q (see -h)\n", fs.Arg(0))
		return 2
	}
	start := time.Now()
	cfg := trafficgen.Config{Packets: *packets, Flows: *flows, Seed: *seed,
		Progress: func(n, total int) {
			fmt.Fprintf(stderr, "\rtrafficgen: %d/%d packets (%.0f%%)", n, total, 100*float64(n)/float64(max(total, 1)))
		}}
	t, err := trafficgen.WriteFile(*out, cfg)
	fmt.Fprintln(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "trafficgen: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %s\n", *out, t)
	fmt.Fprintf(stdout, "packets %d\nflows %d\nwire_bytes %d\nfile_bytes %d\n", t.Packets, t.Flows, t.WireBytes, t.FileBytes)
	fmt.Fprintf(stderr, "trafficgen: wrote %.1f MB in %.2f s\n", float64(t.FileBytes)/1e6, time.Since(start).Seconds())
	return 0
}
