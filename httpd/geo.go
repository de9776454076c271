package httpd

import (
	"github.com/netsentry/netsentry/flowtable"
	"github.com/netsentry/netsentry/geo"
)

// appendConnGeo appends a connection's "source_geo" and "dest_geo" (see
// geo.DB.AppendEndpoints); nothing when g is nil (geolocation off). Lookups
// are cached by address in g, and a rendered response is shared by the
// requests of one snapshot, so a request costs at most limit lookups.
func appendConnGeo(b []byte, g *geo.DB, r *flowtable.Record) []byte {
	if g == nil {
		return b
	}
	return g.AppendEndpoints(b, flowtable.IP(&r.Src, r.IPVersion), flowtable.IP(&r.Dst, r.IPVersion))
}

// appendHostGeo appends a host's "geo" object when something is known.
func appendHostGeo(b []byte, g *geo.DB, h *flowtable.HostCounters) []byte {
	if g == nil {
		return b
	}
	i := g.Lookup(flowtable.IP(&h.Addr, h.IPVersion))
	if !i.Known() {
		return b
	}
	b = append(b, `,"geo":`...)
	return i.AppendJSON(b)
}
