// Package geotest writes small MaxMind-format databases for tests, with
// MaxMind's own writer (github.com/maxmind/mmdbwriter), so that a test's
// expected values are the ones it wrote, not ones the reader produced.
// Only tests import it.
package geotest

import (
	"net"
	"os"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/netsentry/netsentry/geo"
)

// Network is one network of a test database and what it says.
type Network struct {
	Prefix string // CIDR, e.g. "192.150.187.0/24"
	Info   geo.Info
}

// WriteCity writes a GeoLite2-City-like database holding nets' country and
// city to path. Private and reserved networks are allowed.
func WriteCity(t testing.TB, path string, nets []Network) {
	t.Helper()
	write(t, path, "GeoLite2-City", nets, func(i geo.Info) mmdbtype.Map {
		m := mmdbtype.Map{}
		if i.Country != "" {
			m["country"] = mmdbtype.Map{"iso_code": mmdbtype.String(i.Country)}
		}
		if i.City != "" {
			m["city"] = mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(i.City)}}
		}
		return m
	})
}

// WriteASN writes a GeoLite2-ASN-like database holding nets' AS number and
// organization to path.
func WriteASN(t testing.TB, path string, nets []Network) {
	t.Helper()
	write(t, path, "GeoLite2-ASN", nets, func(i geo.Info) mmdbtype.Map {
		m := mmdbtype.Map{}
		if i.ASN != 0 {
			m["autonomous_system_number"] = mmdbtype.Uint32(i.ASN)
		}
		if i.ASOrg != "" {
			m["autonomous_system_organization"] = mmdbtype.String(i.ASOrg)
		}
		return m
	})
}

func write(t testing.TB, path, dbType string, nets []Network, record func(geo.Info) mmdbtype.Map) {
	t.Helper()
	w, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: dbType, RecordSize: 24, IPVersion: 6,
		IncludeReservedNetworks: true, Languages: []string{"en"}})
	if err != nil {
		t.Fatalf("new mmdb writer: %v", err)
	}
	for _, n := range nets {
		_, ipnet, err := net.ParseCIDR(n.Prefix)
		if err != nil {
			t.Fatalf("parse %q: %v", n.Prefix, err)
		}
		if err := w.Insert(ipnet, record(n.Info)); err != nil {
			t.Fatalf("insert %s: %v", n.Prefix, err)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteTo(f); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
