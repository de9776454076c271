package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/netsentry/netsentry/tuning"
)

// tune is `netsentry tune --check|--apply [--interface IF] [--config F]`.
func tune(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("netsentry tune", flag.ContinueOnError)
	fs.SetOutput(stderr)
	check := fs.Bool("check", false, "report what hurts capture accuracy and speed, with the command that fixes each")
	apply := fs.Bool("apply", false, "fix what is safe to fix (offloads, NIC rings, rp_filter), then report")
	iface := fs.String("interface", "", "interface to check (default: the configured capture interfaces)")
	cfgPath := fs.String("config", "", "configuration file (default: the embedded defaults)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *check == *apply {
		fmt.Fprintln(stderr, "netsentry tune: give one of --check or --apply")
		return 2
	}
	o := tuning.Options{}
	if *iface != "" {
		o.Interfaces = []string{*iface}
	} else {
		cfg, _, db, err := loadConfig(*cfgPath)
		db.Close()
		if err != nil {
			fmt.Fprintf(stderr, "netsentry tune: %v\n", err)
			return 2
		}
		o.Interfaces = cfg.Interfaces()
	}
	var fs2 []tuning.Finding
	if *apply {
		fs2 = tuning.Apply(o)
	} else {
		fs2 = tuning.Check(o)
	}
	warn := 0
	for _, f := range fs2 {
		where := f.Interface
		if where == "" {
			where = "host"
		}
		mark := f.Status.String()
		if f.Applied {
			mark = "fixed"
		}
		fmt.Fprintf(stdout, "%-5s %-9s %-10s %s\n", mark, f.Check, where, f.Detail)
		if f.Status == tuning.Warn {
			warn++
			fmt.Fprintf(stdout, "      fix: %s\n", f.Fix)
		}
	}
	if warn > 0 {
		fmt.Fprintf(stdout, "%d finding(s) to fix\n", warn)
		return 1
	}
	return 0
}
