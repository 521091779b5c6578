package kernels

import (
	"os"
	"syscall"
	"unsafe"
)

var pageSize = uintptr(os.Getpagesize())

// releasePages drops the whole pages of a tensor's read-only file mapping from this process's
// resident set once the core has its own fp32 copy (MADV_DONTNEED on a shared read-only file
// mapping only discards the mapping's pages; a later read would fault them back from the page
// cache). It keeps peak RSS at about the packed weights instead of packed weights + file. Only
// called on memory of package safetensors' mmap (never on Go heap memory).
func releasePages(b []byte) {
	if len(b) == 0 {
		return
	}
	start := uintptr(unsafe.Pointer(&b[0]))
	end := start + uintptr(len(b))
	as := (start + pageSize - 1) &^ (pageSize - 1)
	ae := end &^ (pageSize - 1)
	if ae <= as {
		return
	}
	_ = syscall.Madvise(b[as-start:ae-start], syscall.MADV_DONTNEED)
}
