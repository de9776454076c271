//go:build !linux

package main

// raiseCaps has nothing to do where there are no Linux capabilities.
func raiseCaps() bool { return true }
