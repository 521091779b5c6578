//go:build !linux

package kernels

// releasePages is a no-op where package safetensors may not mmap.
func releasePages([]byte) {}
