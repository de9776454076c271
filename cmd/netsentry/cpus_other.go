//go:build !linux

package main

import "runtime"

// allowedCPUs is the number of CPUs the process may use.
func allowedCPUs() int { return runtime.NumCPU() }
