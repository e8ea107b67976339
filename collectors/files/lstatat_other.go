//go:build !(linux && (amd64 || arm64))

package files

import (
	"io/fs"
	"os"
)

// lstatAt stats fsPath without following a symlink; this fallback does
// not use the directory's descriptor.
func lstatAt(_ int, _, fsPath string, _ *[]byte) (fs.FileInfo, error) {
	return os.Lstat(fsPath)
}
