// Package configs owns NetSentry's configuration: the Config type, the
// default configuration file netsentry.yaml (embedded as DefaultYAML and the
// only place defaults are written down), strict decoding of a site file laid
// over those defaults, semantic validation, and encoding for writing a
// configuration back.
//
// Decoding is strict: an unknown key, a duplicate key or a value of the wrong
// type is an error naming the file, line and dotted key path
// ("netsentry.yaml:12: unknown key \"network_analysis.bpf_filtr\""), and
// every problem in a file is reported, not only the first, as an *Errors.
// Parse and Load check form only; Validate checks meaning (ranges, known
// names, ports that clash). LoadChecked does both and reports every problem
// of both kinds with its line, which is what --check-config prints; Check
// and CheckFile do the same and also return the warnings: settings this
// build accepts but does not act on yet (Warnings, Inert), which are not
// errors, so that a file written for a later build still loads.
// Filters in network_analysis.bpf_filter are compiled, and so checked, by
// the bpf package, not here.
//
// Threading and lifetime: a Config is a plain value, loaded once at start-up
// and not changed after. Treat it as immutable; it is then safe to read from
// any number of goroutines. Its slices are shared between copies, so give a
// component that wants to change its own copy a Clone. Nothing in this
// package keeps state or starts goroutines.
package configs
