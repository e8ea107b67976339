//go:build linux && (amd64 || arm64)

package files

import (
	"io/fs"
	"strings"
	"syscall"
	"unsafe"
)

// atSymlinkNofollow is AT_SYMLINK_NOFOLLOW from fcntl.h.
const atSymlinkNofollow = 0x100

// lstatAt stats name, into fi, in the directory open as dirfd without
// following a symlink; resolving one name from the directory costs less than the full
// path from the root for every file. fsPath (the same object) names it in
// errors. Package syscall has no wrapper for fstatat on these platforms.
//
// scratch holds the NUL-terminated name for the call and is reused from
// call to call.
func lstatAt(dirfd int, name, fsPath string, scratch *[]byte, fi *statInfo) error {
	fi.name = name
	if strings.IndexByte(name, 0) >= 0 {
		return &fs.PathError{Op: "lstat", Path: fsPath, Err: syscall.EINVAL}
	}
	*scratch = append(append((*scratch)[:0], name...), 0)
	p := &(*scratch)[0]
	for {
		_, _, errno := syscall.Syscall6(sysFstatat, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
			uintptr(unsafe.Pointer(&fi.st)), atSymlinkNofollow, 0, 0)
		switch {
		case errno == syscall.EINTR:
			continue
		case errno != 0:
			return &fs.PathError{Op: "lstat", Path: fsPath, Err: errno}
		}
		return nil
	}
}
