//go:build !(linux && (amd64 || arm64))

package files

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// lstatAt stats fsPath into fi without following a symlink; this fallback
// does not use the directory's descriptor.
func lstatAt(_ int, name, fsPath string, _ *[]byte, fi *statInfo) error {
	got, err := os.Lstat(fsPath)
	if err != nil {
		return err
	}
	st, ok := got.Sys().(*syscall.Stat_t)
	if !ok {
		return &fs.PathError{Op: "lstat", Path: fsPath, Err: errors.ErrUnsupported}
	}
	fi.name, fi.st = name, *st
	return nil
}
