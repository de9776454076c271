package sampler

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/procfs"
)

// ErrNotSupported is returned (inside Snapshot.Errors) for a source this
// platform cannot read.
var ErrNotSupported = errors.New("not supported on this platform")

// fsStat is what statfs(2) tells of a file system.
type fsStat struct {
	blocks, bfree, bavail, bsize uint64
	files, ffree                 uint64
}

func (s *Sampler) disks(m *Metrics, cur *state, elapsed time.Duration) error {
	var errs []error
	mounts, err := s.proc.GetProcMounts(s.cfg.Self)
	if err != nil {
		errs = append(errs, fmt.Errorf("read mountinfo: %w", err))
	}
	ticks := map[string]uint64{} // "major:minor" -> io_ticks
	names := map[string]string{} // "major:minor" -> device name
	stats, err := s.block.ProcDiskstats()
	if err != nil {
		errs = append(errs, fmt.Errorf("read diskstats: %w", err))
	}
	for _, d := range stats {
		key := strconv.FormatUint(uint64(d.MajorNumber), 10) + ":" + strconv.FormatUint(uint64(d.MinorNumber), 10)
		ticks[key] = d.IOsTotalTicks
		names[key] = d.DeviceName
	}
	cur.disk = map[string]uint64{}
	m.Disks = make([]Disk, 0, len(s.cfg.DiskPaths))
	for _, path := range s.cfg.DiskPaths {
		d := Disk{Path: path}
		if fs, err := statfs(filepath.Join(s.cfg.HostRoot, path)); err != nil {
			errs = append(errs, fmt.Errorf("statfs %s: %w", path, err))
		} else {
			d.TotalBytes = fs.blocks * fs.bsize
			d.UsedBytes = (fs.blocks - min(fs.bfree, fs.blocks)) * fs.bsize
			d.FreeBytes = fs.bavail * fs.bsize
			d.UsedPercent = percent(d.UsedBytes, d.UsedBytes+d.FreeBytes)
			d.InodesUsedPercent = percent(fs.files-min(fs.ffree, fs.files), fs.files)
		}
		if key := mountDevice(mounts, path); key != "" {
			if name, ok := names[key]; ok {
				d.Device = name
				cur.disk[name] = ticks[key]
				if s.prev != nil && elapsed > 0 {
					if old, ok := s.prev.disk[name]; ok && ticks[key] >= old {
						u := clampPercent(float64(ticks[key]-old) / float64(elapsed.Milliseconds()) * 100)
						d.IOUtilizationPercent = &u
					}
				}
			}
		}
		m.Disks = append(m.Disks, d)
	}
	m.Disk = m.Disks[0]
	return errors.Join(errs...)
}

// mountDevice returns the "major:minor" of the mount that holds path: the
// longest mount point that is path or a parent of it, the last mounted on
// ties (it hides the ones below it).
func mountDevice(mounts []*procfs.MountInfo, path string) string {
	best, dev := -1, ""
	for _, mi := range mounts {
		mp := mi.MountPoint
		if mp != path && mp != "/" && !strings.HasPrefix(path, mp+"/") {
			continue
		}
		if len(mp) >= best {
			best, dev = len(mp), mi.MajorMinorVer
		}
	}
	return dev
}
