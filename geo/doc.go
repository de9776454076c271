// Package geo looks up where an IP address is: its country and city from a
// MaxMind-format City (or Country) database, and its autonomous system from
// a MaxMind-format ASN database (network_analysis.geoip_db and asn_db),
// read with github.com/oschwald/maxminddb-golang.
//
// It is never on the packet path: a flow's endpoints are looked up when its
// record is written, and hosts when the API or the summary renders them.
// Results are kept in a small bounded cache by address, so that the many
// flows of one host cost one lookup.
//
// Threading and lifetime: a *DB is safe for use by any number of
// goroutines; the cache is guarded by a mutex. The databases are
// memory-mapped by Open and released by Close; do not rewrite a database
// file in place while a DB has it open. A nil *DB is valid and knows
// nothing, so callers need not test whether geolocation is on.
package geo
