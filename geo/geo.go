package geo

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/netsentry/netsentry/configs"
)

// CacheSize is the most addresses a DB keeps the result of; when the cache
// is full it is emptied and fills again.
const CacheSize = 1 << 14

// Info is what the databases say about one address. Empty fields are
// unknown (a private address, a database without cities, no ASN database).
type Info struct {
	Country string // ISO 3166-1 alpha-2 code, e.g. "DE"
	City    string // English name, e.g. "Berlin"
	ASN     uint32 // autonomous system number, e.g. 3320
	ASOrg   string // autonomous system organization, e.g. "Deutsche Telekom AG"
}

// Known reports whether i holds anything.
func (i Info) Known() bool { return i != Info{} }

// AppendJSON appends i as a JSON object with the keys country, city, asn
// and as_org, leaving out those that are unknown.
func (i Info) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	n := len(b)
	field := func(name string) {
		if len(b) > n {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `":`...)
	}
	if i.Country != "" {
		field("country")
		b = appendString(b, i.Country)
	}
	if i.City != "" {
		field("city")
		b = appendString(b, i.City)
	}
	if i.ASN != 0 {
		field("asn")
		b = strconv.AppendUint(b, uint64(i.ASN), 10)
	}
	if i.ASOrg != "" {
		field("as_org")
		b = appendString(b, i.ASOrg)
	}
	return append(b, '}')
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	q, err := json.Marshal(s) // not on the packet path; strings from the database may hold anything
	if err != nil {
		panic("BUG: marshal string: " + err.Error())
	}
	return append(b, q...)
}

// DB answers lookups from a City database and, optionally, an ASN database.
type DB struct {
	city, asn *maxminddb.Reader

	mu    sync.Mutex
	cache map[netip.Addr]Info
}

// OpenError is the error of Open: which database could not be used.
type OpenError struct {
	Path string
	ASN  bool // the ASN database, not the City one
	Err  error
}

func (e *OpenError) Error() string {
	kind := "GeoIP"
	if e.ASN {
		kind = "ASN"
	}
	return fmt.Sprintf("open %s database %q: %v", kind, e.Path, e.Err)
}

func (e *OpenError) Unwrap() error { return e.Err }

// Open opens the City (or Country) database at cityPath and, unless asnPath
// is "", the ASN database at asnPath. A file that is missing, unreadable or
// not a MaxMind DB is an *OpenError; with both bad, the error joins both.
func Open(cityPath, asnPath string) (*DB, error) {
	db := &DB{cache: make(map[netip.Addr]Info)}
	var errs []error
	var err error
	if db.city, err = maxminddb.Open(cityPath); err != nil {
		errs = append(errs, &OpenError{Path: cityPath, Err: err})
	}
	if asnPath != "" {
		if db.asn, err = maxminddb.Open(asnPath); err != nil {
			errs = append(errs, &OpenError{Path: asnPath, ASN: true, Err: err})
		}
	}
	if len(errs) > 0 {
		db.Close()
		return nil, errors.Join(errs...)
	}
	return db, nil
}

// OpenConfig opens the databases that na names when geolocation is on; it
// returns nil (a DB that knows nothing) when it is off. A database that
// cannot be used is a *configs.Errors naming the key
// (network_analysis.geoip_db or asn_db) and the file, as --check-config
// and PUT /api/v1/config list it.
func OpenConfig(na configs.NetworkAnalysis) (*DB, error) {
	if !na.EnableGeolocation {
		return nil, nil
	}
	db, err := Open(na.GeoIPDB, na.ASNDB)
	if err == nil {
		return db, nil
	}
	var errs configs.Errors
	for _, key := range []string{"network_analysis.geoip_db", "network_analysis.asn_db"} {
		var oe *OpenError
		for _, e := range unjoin(err) {
			if errors.As(e, &oe) && oe.ASN == (key == "network_analysis.asn_db") {
				errs.Problems = append(errs.Problems, configs.Problem{Key: key,
					Msg: fmt.Sprintf("%s: cannot read %q as a MaxMind database: %v", key, oe.Path, oe.Err)})
			}
		}
	}
	return nil, &errs
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// Close releases the databases. Lookups after Close find nothing.
func (db *DB) Close() error {
	if db == nil {
		return nil
	}
	var err error
	for _, r := range []*maxminddb.Reader{db.city, db.asn} {
		if r != nil {
			if cerr := r.Close(); err == nil {
				err = cerr
			}
		}
	}
	if err != nil {
		return fmt.Errorf("close geo databases: %w", err)
	}
	return nil
}

type cityRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	RegisteredCountry struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
	City struct {
		Names struct {
			En string `maxminddb:"en"`
		} `maxminddb:"names"`
	} `maxminddb:"city"`
}

type asnRecord struct {
	Number       uint32 `maxminddb:"autonomous_system_number"`
	Organization string `maxminddb:"autonomous_system_organization"`
}

// Lookup returns what the databases say about a; an address they do not
// hold, or a damaged record, gives what could be read (maybe nothing).
// Results are cached. Safe on a nil DB.
func (db *DB) Lookup(a netip.Addr) Info {
	if db == nil || !a.IsValid() {
		return Info{}
	}
	a = a.Unmap().WithZone("")
	db.mu.Lock()
	i, ok := db.cache[a]
	db.mu.Unlock()
	if ok {
		return i
	}
	i = db.lookup(a)
	db.mu.Lock()
	if len(db.cache) >= CacheSize {
		clear(db.cache)
	}
	db.cache[a] = i
	db.mu.Unlock()
	return i
}

func (db *DB) lookup(a netip.Addr) Info {
	var i Info
	if db.city != nil {
		var rec cityRecord
		if res := db.city.Lookup(a); res.Found() && res.Decode(&rec) == nil {
			i.Country = rec.Country.ISOCode
			if i.Country == "" {
				i.Country = rec.RegisteredCountry.ISOCode
			}
			i.City = rec.City.Names.En
		}
	}
	if db.asn != nil {
		var rec asnRecord
		if res := db.asn.Lookup(a); res.Found() && res.Decode(&rec) == nil {
			i.ASN, i.ASOrg = rec.Number, rec.Organization
		}
	}
	return i
}

// AppendEndpoints appends the JSON fields "source_geo" and "dest_geo" (each
// with a leading comma, each only when something is known) for a flow
// between src and dst. Safe on a nil DB, which appends nothing.
func (db *DB) AppendEndpoints(b []byte, src, dst netip.Addr) []byte {
	if db == nil {
		return b
	}
	if i := db.Lookup(src); i.Known() {
		b = append(b, `,"source_geo":`...)
		b = i.AppendJSON(b)
	}
	if i := db.Lookup(dst); i.Known() {
		b = append(b, `,"dest_geo":`...)
		b = i.AppendJSON(b)
	}
	return b
}

// CheckConfig checks a configuration file like configs.Check and, when it
// turns geolocation on, opens its databases, whose problems are listed with
// the others (key and file named, see OpenConfig). It returns the open DB
// (nil when geolocation is off, or on any problem); the caller closes it.
func CheckConfig(data []byte, name string, adjust func(*configs.Config)) (configs.Config, []configs.Problem, *DB, error) {
	var decoded configs.Config
	c, warns, err := configs.Check(data, name, func(c *configs.Config) {
		if adjust != nil {
			adjust(c)
		}
		decoded = c.Clone()
	})
	var errs configs.Errors
	if err != nil {
		errs = *err.(*configs.Errors)
	}
	var db *DB
	if na := decoded.NetworkAnalysis; na.EnableGeolocation && na.GeoIPDB != "" {
		var gerr error
		if db, gerr = OpenConfig(na); gerr != nil {
			for _, p := range gerr.(*configs.Errors).Problems {
				p.File = name
				errs.Problems = append(errs.Problems, p)
			}
		}
	}
	if len(errs.Problems) > 0 {
		db.Close()
		return configs.Config{}, warns, nil, &errs
	}
	return c, warns, db, nil
}
