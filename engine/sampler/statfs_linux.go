package sampler

import "syscall"

func statfs(path string) (fsStat, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return fsStat{}, err
	}
	return fsStat{
		blocks: st.Blocks, bfree: st.Bfree, bavail: st.Bavail, bsize: uint64(st.Bsize),
		files: st.Files, ffree: st.Ffree,
	}, nil
}
