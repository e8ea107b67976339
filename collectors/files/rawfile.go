package files

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"syscall"
	"time"

	"github.com/huntmesh/huntmesh/collectors/yarascan"
)

// rawFile is a file opened for the files collector's hot path as a bare
// descriptor. It skips what os.File adds per open (a poller registration
// that regular files always refuse, and flag probes), which on a small
// file costs as much as reading it.
type rawFile struct {
	fd   int
	name string // fsPath, for errors
	st   syscall.Stat_t
}

// openRaw opens fsPath for reading only if it is the regular file the walk
// saw as want: O_NOFOLLOW refuses a symlink swapped in for the name,
// O_NONBLOCK keeps a FIFO swapped in from blocking the open, and the Fstat
// after it refuses anything but a regular file with want's device and
// inode. Errors wrap yarascan.ErrNotRegular for a changed or non-regular
// object, fs.ErrNotExist for a vanished one and fs.ErrPermission.
func openRaw(fsPath string, want fs.FileInfo) (*rawFile, error) {
	var fd int
	var err error
	for {
		fd, err = syscall.Open(fsPath, syscall.O_RDONLY|syscall.O_NOFOLLOW|
			syscall.O_NONBLOCK|syscall.O_CLOEXEC|syscall.O_NOCTTY, 0)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("open %s: %w (symlink)", fsPath, yarascan.ErrNotRegular)
		}
		return nil, &fs.PathError{Op: "open", Path: fsPath, Err: err}
	}
	f := &rawFile{fd: fd, name: fsPath}
	if err := syscall.Fstat(fd, &f.st); err != nil {
		f.Close()
		return nil, &fs.PathError{Op: "fstat", Path: fsPath, Err: err}
	}
	if f.st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		f.Close()
		return nil, fmt.Errorf("open %s: %w (changed while opening)", fsPath,
			yarascan.ErrNotRegular)
	}
	if ws, ok := want.Sys().(*syscall.Stat_t); ok && (ws.Dev != f.st.Dev || ws.Ino != f.st.Ino) {
		f.Close()
		return nil, fmt.Errorf("open %s: %w (replaced since listed)", fsPath,
			yarascan.ErrNotRegular)
	}
	return f, nil
}

// Read implements io.Reader over the descriptor.
func (f *rawFile) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := syscall.Read(f.fd, p)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil:
			return 0, &fs.PathError{Op: "read", Path: f.name, Err: err}
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// Close releases the descriptor; it is safe to call twice.
func (f *rawFile) Close() {
	if f.fd >= 0 {
		_ = syscall.Close(f.fd)
		f.fd = -1
	}
}

// info describes the opened file as the fs.FileInfo the record is built
// from.
func (f *rawFile) info() fs.FileInfo { return &statInfo{name: path.Base(f.name), st: f.st} }

// statInfo is an fs.FileInfo built from a Stat_t, for a file the walk
// stats relative to its directory's descriptor or one openRaw opened.
type statInfo struct {
	name string
	st   syscall.Stat_t
}

func (s *statInfo) Name() string       { return s.name }
func (s *statInfo) Size() int64        { return s.st.Size }
func (s *statInfo) IsDir() bool        { return s.Mode().IsDir() }
func (s *statInfo) Sys() any           { return &s.st }
func (s *statInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Sec, s.st.Mtim.Nsec) }

// Mode maps the type, permission and special bits the way package os
// does.
func (s *statInfo) Mode() fs.FileMode {
	m := fs.FileMode(s.st.Mode & 0o777)
	switch s.st.Mode & syscall.S_IFMT {
	case syscall.S_IFBLK:
		m |= fs.ModeDevice
	case syscall.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFDIR:
		m |= fs.ModeDir
	case syscall.S_IFIFO:
		m |= fs.ModeNamedPipe
	case syscall.S_IFLNK:
		m |= fs.ModeSymlink
	case syscall.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if s.st.Mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if s.st.Mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if s.st.Mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}
