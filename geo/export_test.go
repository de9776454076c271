package geo

import (
	"net/netip"

	"github.com/oschwald/maxminddb-golang/v2"
)

// CacheLen returns how many addresses db has cached.
func CacheLen(db *DB) int {
	db.mu.Lock()
	defer db.mu.Unlock()
	return len(db.cache)
}

// OpenBytes opens databases held in memory, for the fuzz target.
func OpenBytes(city, asn []byte) (*DB, error) {
	db := &DB{cache: make(map[netip.Addr]Info)}
	var err error
	if db.city, err = maxminddb.OpenBytes(city); err != nil {
		return nil, err
	}
	if db.asn, err = maxminddb.OpenBytes(asn); err != nil {
		return nil, err
	}
	return db, nil
}
