package main

import (
	"github.com/netsentry/netsentry/engine"
	"github.com/netsentry/netsentry/flowtable"
	"github.com/netsentry/netsentry/geo"
)

// geoLines makes j add each flow's "source_geo" and "dest_geo" from db
// (when db is not nil): looked up once per flow record written, on the
// exporter's goroutine, never per packet.
func geoLines(j *engine.JSONLines, db *geo.DB) *engine.JSONLines {
	if db != nil {
		j.Extra = func(r *flowtable.Record, b []byte) []byte {
			return db.AppendEndpoints(b, flowtable.IP(&r.Src, r.IPVersion), flowtable.IP(&r.Dst, r.IPVersion))
		}
	}
	return j
}
