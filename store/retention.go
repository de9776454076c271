package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// enforce applies retention and the disk cap at tick now (ms): partitions
// whose whole span is older than now-Retention are dropped, then the oldest
// partitions until the time series' tables and the WAL fit in MaxDiskBytes. The
// partition now is in is never dropped. A drop is a DeleteRange of the
// partition's chunk keys and the deletion of its member record, followed by
// a compaction of that key range; nothing is scanned.
func (s *Store) enforce(now int64) error {
	cutoff := now - s.opt.Retention.Milliseconds()
	cur := floorDiv(now, s.span)
	for {
		s.mu.RLock()
		p, ok := int64(0), len(s.partList) > 0
		if ok {
			p = s.partList[0]
		}
		s.mu.RUnlock()
		if !ok || p >= cur || (p+1)*s.span > cutoff {
			break
		}
		if err := s.dropPartition(p, "retention"); err != nil {
			return err
		}
	}
	if s.opt.MaxDiskBytes <= 0 {
		return nil
	}
	// Measure tables, not the memtable: flush it first (once a window).
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("flush for disk cap: %w", err)
	}
	for {
		used := s.capBytes()
		if used <= s.opt.MaxDiskBytes {
			return nil
		}
		s.mu.RLock()
		p, ok := int64(0), len(s.partList) > 0
		if ok {
			p = s.partList[0]
		}
		s.mu.RUnlock()
		if !ok || p >= cur {
			return nil
		}
		if err := s.dropPartition(p, "disk cap"); err != nil {
			return err
		}
	}
}

// capBytes is what the disk cap bounds: the time series' tables and the
// write-ahead log (shared with the flow history; live and recyclable files).
func (s *Store) capBytes() int64 {
	m := s.db.Metrics()
	return s.seriesBytes() + int64(m.WAL.PhysicalSize+m.WAL.ObsoletePhysicalSize)
}

func (s *Store) dropPartition(p int64, why string) error {
	b := s.db.NewBatch()
	defer b.Close()
	lo, hi := chunkPartPrefix(p), chunkPartPrefix(p+1)
	if err := b.DeleteRange(lo, hi, nil); err != nil {
		return fmt.Errorf("drop partition %d: %w", p, err)
	}
	if err := b.Delete(memberKey(p), nil); err != nil {
		return fmt.Errorf("drop partition %d: %w", p, err)
	}
	// Queries must not see the partition listed once its chunks are gone.
	s.mu.Lock()
	if err := b.Commit(pebble.Sync); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("drop partition %d: %w", p, err)
	}
	delete(s.parts, p)
	if i, ok := slices.BinarySearch(s.partList, p); ok {
		s.partList = slices.Delete(s.partList, i, i+1)
	}
	s.mu.Unlock()
	if why == "retention" {
		s.droppedRet.Add(1)
	} else {
		s.droppedCap.Add(1)
	}
	s.log.Info("store dropped partition", "why", why,
		"start", time.UnixMilli(p*s.span).UTC().Format(time.RFC3339))
	if err := s.db.Compact(context.Background(), lo, hi, false); err != nil {
		return fmt.Errorf("compact partition %d: %w", p, err)
	}
	return nil
}
