package geo_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/netsentry/netsentry/configs"
	"github.com/netsentry/netsentry/geo"
	"github.com/netsentry/netsentry/geo/geotest"
)

var (
	berlin  = geo.Info{Country: "DE", City: "Berlin"}
	dtag    = geo.Info{ASN: 3320, ASOrg: "Deutsche Telekom AG"}
	tokyo   = geo.Info{Country: "JP", City: "Tōkyō \"Chiyoda\""} // non-ASCII and a quote
	v6City  = geo.Info{Country: "NL"}
	v6ASN   = geo.Info{ASN: 1136, ASOrg: "KPN B.V."}
	cityNet = []geotest.Network{{Prefix: "198.51.100.0/24", Info: berlin}, {Prefix: "203.0.113.0/25", Info: tokyo}, {Prefix: "2001:db8:1::/48", Info: v6City}}
	asnNet  = []geotest.Network{{Prefix: "198.51.100.0/23", Info: dtag}, {Prefix: "2001:db8::/32", Info: v6ASN}}
)

func writeDBs(t *testing.T) (city, asn string) {
	dir := t.TempDir()
	city, asn = filepath.Join(dir, "city.mmdb"), filepath.Join(dir, "asn.mmdb")
	geotest.WriteCity(t, city, cityNet)
	geotest.WriteASN(t, asn, asnNet)
	return city, asn
}

func TestLookup(t *testing.T) {
	city, asn := writeDBs(t)
	db, err := geo.Open(city, asn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tc := range []struct {
		addr string
		want geo.Info
	}{
		{"198.51.100.7", geo.Info{Country: "DE", City: "Berlin", ASN: 3320, ASOrg: "Deutsche Telekom AG"}},
		{"198.51.101.1", dtag}, // in the ASN's /23, not the city's /24
		{"203.0.113.9", tokyo},
		{"203.0.113.200", geo.Info{}},
		{"::ffff:198.51.100.7", geo.Info{Country: "DE", City: "Berlin", ASN: 3320, ASOrg: "Deutsche Telekom AG"}},
		{"2001:db8:1::5", geo.Info{Country: "NL", ASN: 1136, ASOrg: "KPN B.V."}},
		{"2001:db8:2::5", v6ASN},
		{"10.0.0.1", geo.Info{}},
	} {
		for range 2 { // the second time from the cache
			if got := db.Lookup(netip.MustParseAddr(tc.addr)); got != tc.want {
				t.Errorf("Lookup(%s) = %+v, want %+v", tc.addr, got, tc.want)
			}
		}
	}
	if got := db.Lookup(netip.Addr{}); got.Known() {
		t.Errorf("Lookup(invalid) = %+v", got)
	}
	var none *geo.DB
	if got := none.Lookup(netip.MustParseAddr("198.51.100.7")); got.Known() {
		t.Errorf("nil DB found %+v", got)
	}
	if b := none.AppendEndpoints(nil, netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("203.0.113.9")); len(b) != 0 {
		t.Errorf("nil DB appended %q", b)
	}

	// Without an ASN database, no AS fields.
	db2, err := geo.Open(city, "")
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if got := db2.Lookup(netip.MustParseAddr("198.51.100.7")); got != berlin {
		t.Errorf("city only: %+v", got)
	}
}

func TestAppendJSON(t *testing.T) {
	city, asn := writeDBs(t)
	db, err := geo.Open(city, asn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b := db.AppendEndpoints([]byte(`{"x":1`), netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("203.0.113.9"))
	b = append(b, '}')
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	want := map[string]any{"x": 1.0,
		"source_geo": map[string]any{"country": "DE", "city": "Berlin", "asn": 3320.0, "as_org": "Deutsche Telekom AG"},
		"dest_geo":   map[string]any{"country": "JP", "city": "Tōkyō \"Chiyoda\""}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %s", b)
	}
	// Nothing known: no field.
	if b := db.AppendEndpoints(nil, netip.MustParseAddr("10.1.1.1"), netip.MustParseAddr("10.2.2.2")); len(b) != 0 {
		t.Errorf("unknown endpoints appended %q", b)
	}
	if b := (geo.Info{ASN: 1}).AppendJSON(nil); string(b) != `{"asn":1}` {
		t.Errorf("AppendJSON = %s", b)
	}
}

func TestCacheBounded(t *testing.T) {
	city, asn := writeDBs(t)
	db, err := geo.Open(city, asn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range geo.CacheSize + 100 {
		db.Lookup(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
		if n := geo.CacheLen(db); n > geo.CacheSize {
			t.Fatalf("cache holds %d > %d", n, geo.CacheSize)
		}
	}
	if got := db.Lookup(netip.MustParseAddr("198.51.100.7")); got.Country != "DE" {
		t.Errorf("after the cache refilled: %+v", got)
	}
}

func TestOpenErrors(t *testing.T) {
	city, asn := writeDBs(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.mmdb")
	corrupt := filepath.Join(dir, "corrupt.mmdb")
	if err := os.WriteFile(corrupt, []byte(strings.Repeat("not a maxmind database\n", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.mmdb")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := geo.Open(missing, asn); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), fmt.Sprintf("open GeoIP database %q", missing)) {
		t.Errorf("Open(missing) = %v", err)
	}
	for _, bad := range []string{corrupt, empty} {
		if _, err := geo.Open(city, bad); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("open ASN database %q", bad)) {
			t.Errorf("Open(%s) = %v", bad, err)
		}
	}

	na := configs.Default().NetworkAnalysis
	if db, err := geo.OpenConfig(na); db != nil || err != nil {
		t.Errorf("OpenConfig(off) = %v, %v", db, err)
	}
	na.EnableGeolocation, na.GeoIPDB, na.ASNDB = true, missing, corrupt
	_, err := geo.OpenConfig(na)
	var errs *configs.Errors
	if !errors.As(err, &errs) || len(errs.Problems) != 2 {
		t.Fatalf("OpenConfig(missing, corrupt) = %v", err)
	}
	for i, key := range []string{"network_analysis.geoip_db", "network_analysis.asn_db"} {
		p := errs.Problems[i]
		path := []string{missing, corrupt}[i]
		if p.Key != key || !strings.HasPrefix(p.Msg, fmt.Sprintf("%s: cannot read %q as a MaxMind database: ", key, path)) {
			t.Errorf("problem %d = %+v, want key %s naming %s", i, p, key, path)
		}
	}
	na.GeoIPDB, na.ASNDB = city, asn
	db, err := geo.OpenConfig(na)
	if err != nil || db.Lookup(netip.MustParseAddr("198.51.100.1")).City != "Berlin" {
		t.Errorf("OpenConfig(good) = %v", err)
	}
	db.Close()
}

// FuzzOpenBytes feeds damaged databases to the reader and the lookups: no
// panic, whatever the bytes.
func FuzzOpenBytes(f *testing.F) {
	dir := f.TempDir()
	city, asn := filepath.Join(dir, "city.mmdb"), filepath.Join(dir, "asn.mmdb")
	geotest.WriteCity(f, city, cityNet)
	geotest.WriteASN(f, asn, asnNet)
	cb, err := os.ReadFile(city)
	if err != nil {
		f.Fatal(err)
	}
	ab, err := os.ReadFile(asn)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cb, ab)
	f.Add(cb[:len(cb)/2], ab[len(ab)/3:])
	f.Fuzz(func(t *testing.T, c, a []byte) {
		db, err := geo.OpenBytes(c, a)
		if err != nil {
			return
		}
		for _, s := range []string{"198.51.100.7", "203.0.113.9", "2001:db8:1::5", "10.0.0.1", "::"} {
			db.AppendEndpoints(nil, netip.MustParseAddr(s), netip.MustParseAddr(s))
		}
	})
}
