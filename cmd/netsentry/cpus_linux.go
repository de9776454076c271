package main

import "golang.org/x/sys/unix"

// allowedCPUs is the number of CPUs the process may run on.
func allowedCPUs() int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil || set.Count() == 0 {
		return 1
	}
	return set.Count()
}
