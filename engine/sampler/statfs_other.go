//go:build !linux

package sampler

func statfs(string) (fsStat, error) { return fsStat{}, ErrNotSupported }
