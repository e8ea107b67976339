package yarascan

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"

	yara "github.com/hillu/go-yara/v4"
)

// ScanFile scans the regular file at path. It checks with Lstat that path
// is a regular file, opens it with O_NOFOLLOW|O_NONBLOCK so that a symlink
// or FIFO swapped in after the check is refused rather than followed or
// waited on, and confirms with Fstat that it opened the same file. Anything
// else returns an error wrapping ErrNotRegular. vars sets the external
// variables for this scan only; timeout 0 means none.
func (r *Rules) ScanFile(path string, vars map[string]string,
	timeout time.Duration) ([]Match, error) {
	f, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return r.ScanOpenFile(f, vars, timeout)
}

// ScanOpenFile scans the file f, which the caller opened (with
// OpenRegular, ideally). libyara maps the file, so the whole content is
// scanned in one piece regardless of size. f's offset is not used.
func (r *Rules) ScanOpenFile(f *os.File, vars map[string]string,
	timeout time.Duration) ([]Match, error) {
	return r.ScanFD(f.Fd(), f.Name(), vars, timeout)
}

// ScanFD is ScanOpenFile for a bare descriptor of a regular file the
// caller opened and checked; name is used in errors only.
func (r *Rules) ScanFD(fd uintptr, name string, vars map[string]string,
	timeout time.Duration) ([]Match, error) {
	ms, err := r.scan(vars, timeout, 0, func(s *yara.Scanner) error {
		return s.ScanFileDescriptor(fd)
	})
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", name, err)
	}
	return ms, nil
}

// scanFlagsNoTryCatch is libyara's SCAN_FLAGS_NO_TRYCATCH (yara/scan.h),
// which go-yara does not name.
const scanFlagsNoTryCatch yara.ScanFlags = 4

// ScanBytes scans b as one object. b is memory the Go runtime owns and
// keeps mapped, so reading it cannot fault; when the rules import no
// module (whose parsers are the part of libyara that could fault on a
// hostile file) the scan skips libyara's fault guard, which costs over a
// dozen signal-handler system calls per scan and is most of a small
// file's scan time after the matching itself.
func (r *Rules) ScanBytes(b []byte, vars map[string]string,
	timeout time.Duration) ([]Match, error) {
	var flags yara.ScanFlags
	if r.noImports {
		flags = scanFlagsNoTryCatch
	}
	return r.scan(vars, timeout, flags, func(s *yara.Scanner) error {
		return s.ScanMem(b)
	})
}

// ScanProc scans the memory of process pid with libyara's own process
// reader (which on Linux reads /proc/pid/maps and /proc/pid/mem, and needs
// ptrace rights over the process). The process is stopped while scanned.
func (r *Rules) ScanProc(pid int, vars map[string]string,
	timeout time.Duration) ([]Match, error) {
	ms, err := r.scan(vars, timeout, 0, func(s *yara.Scanner) error {
		return s.ScanProc(pid)
	})
	if err != nil {
		return nil, fmt.Errorf("scan process %d: %w", pid, err)
	}
	return ms, nil
}

// OpenRegular opens path for reading only if it is a regular file, without
// following a symlink in its last element and without blocking on a FIFO.
// A non-regular file yields an error wrapping ErrNotRegular; a file that
// vanished yields one wrapping fs.ErrNotExist.
func OpenRegular(path string) (*os.File, error) {
	before, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if !before.Mode().IsRegular() {
		return nil, fmt.Errorf("open %s: %w (%s)", path, ErrNotRegular, before.Mode().Type())
	}

	flags := os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_CLOEXEC
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		if pe, ok := err.(*fs.PathError); ok && pe.Err == syscall.ELOOP {
			return nil, fmt.Errorf("open %s: %w (symlink)", path, ErrNotRegular)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}

	// The name may have been swapped between Lstat and open; make sure the
	// opened file is the regular file that was checked.
	after, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat open %s: %w", path, err)
	}
	if !after.Mode().IsRegular() || !os.SameFile(before, after) {
		f.Close()
		return nil, fmt.Errorf("open %s: %w (changed while opening)", path, ErrNotRegular)
	}
	return f, nil
}
