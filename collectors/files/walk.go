package files

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"

	"github.com/huntmesh/huntmesh/collectors"
)

// dirBatch is how many directory entries are read at a time, bounding
// memory on huge directories.
const dirBatch = 1024

// itemBatch is how many files the walker hands to a worker at once: one
// channel hand-off (and often one goroutine wake-up) per batch rather
// than per file.
const itemBatch = 128

// item is one file system object the walker hands to the workers.
type item struct {
	hostPath string
	fsPath   string
	info     fs.FileInfo // from Lstat; may point at st
	st       statInfo    // holds the walk's stat inside the batch, saving an allocation
}

// dirID identifies a directory for loop detection.
type dirID struct{ dev, ino uint64 }

// walker enumerates the objects under the roots of one run.
type walker struct {
	env   *collectors.Env
	p     *filesParams
	out   chan<- []item
	batch []item // being filled; sent when full and at the end of the walk

	scratch []byte   // for lstatAt
	cur     statInfo // the entry being offered
}

// walk visits every root in turn; it returns ctx's error when cancelled.
func (w *walker) walk(ctx context.Context) error {
	visited := map[dirID]bool{}
	for _, root := range w.p.Roots {
		if err := w.walkRoot(ctx, path.Clean(root), visited); err != nil {
			return err
		}
	}
	return w.flush(ctx)
}

// flush sends the batch being filled.
func (w *walker) flush(ctx context.Context) error {
	if len(w.batch) == 0 {
		return nil
	}
	select {
	case w.out <- w.batch:
		w.batch = nil
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// walkRoot walks one root depth-first with an explicit stack, so depth is
// not bounded by the goroutine stack.
func (w *walker) walkRoot(ctx context.Context, root string, visited map[dirID]bool) error {
	if isExcluded(w.env.Exclude, root) {
		w.env.Stats.Skip("excluded", root)
		return nil
	}
	fi, err := os.Lstat(hostToFS(w.env.Root, root))
	if err != nil {
		w.skipErr(err, root)
		return nil
	}
	if !fi.IsDir() {
		return w.offer(ctx, root, hostToFS(w.env.Root, root), fi)
	}
	rootDev := devOf(fi)

	stack := []string{root}
	for len(stack) > 0 {
		dir := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		subdirs, err := w.readDir(ctx, dir, rootDev, visited)
		if err != nil {
			return err
		}
		// Push in reverse so that the first-listed subdirectory is next.
		for i := len(subdirs) - 1; i >= 0; i-- {
			stack = append(stack, subdirs[i])
		}
	}
	return nil
}

// readDir lists one directory, offers its files and returns the
// subdirectories to enter.
func (w *walker) readDir(ctx context.Context, dir string, rootDev uint64,
	visited map[dirID]bool) ([]string, error) {
	fsDir := hostToFS(w.env.Root, dir)

	// Open without following a symlink swapped in for the directory, and
	// check that it is the directory we meant to enter.
	f, err := os.OpenFile(fsDir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|
		syscall.O_CLOEXEC, 0)
	if err != nil {
		w.skipErr(err, dir)
		return nil, nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		w.skipErr(err, dir)
		return nil, nil
	}
	id := dirID{devOf(fi), inoOf(fi)}
	if visited[id] {
		w.env.Stats.Skip("loop", dir)
		return nil, nil
	}
	visited[id] = true
	if w.p.oneFS() && id.dev != rootDev {
		w.env.Stats.Skip("filesystem", dir)
		return nil, nil
	}

	dirfd := int(f.Fd())
	var subdirs []string
	for {
		ents, err := f.ReadDir(dirBatch)
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			child := joinName(dir, e.Name())
			if isExcluded(w.env.Exclude, child) || matchAny(w.p.Exclude, child) {
				w.env.Stats.Skip("excluded", child)
				continue
			}
			if e.IsDir() {
				subdirs = append(subdirs, child)
				continue
			}
			// fsDir is clean, as filepath.Join leaves it.
			fsChild := joinName(fsDir, e.Name())
			if err := lstatAt(dirfd, e.Name(), fsChild, &w.scratch, &w.cur); err != nil {
				w.skipErr(err, child)
				continue
			}
			if err := w.offer(ctx, child, fsChild, &w.cur); err != nil {
				return nil, err
			}
		}
		if errors.Is(err, io.EOF) || (err == nil && len(ents) == 0) {
			break
		}
		if err != nil {
			w.skipErr(err, dir)
			break
		}
	}
	return subdirs, nil
}

// offer applies the hunt's filters to a non-directory and queues what
// passes. Filters the hunt asked for (include, size floor, time window)
// drop silently; limits that hide evidence (max_size, file type) count.
func (w *walker) offer(ctx context.Context, hostPath, fsPath string, fi fs.FileInfo) error {
	mode := fi.Mode()
	switch {
	case fi.IsDir():
		return nil
	case len(w.p.Include) > 0 && !matchAny(w.p.Include, hostPath):
		return nil
	case mode&fs.ModeSymlink != 0:
		// Recorded with its target, never followed.
	case !mode.IsRegular():
		w.env.Stats.Skip("type", hostPath)
		return nil
	case fi.Size() < w.p.MinSize:
		return nil
	case fi.Size() > w.p.MaxSize:
		w.env.Stats.Skip("size", hostPath)
		return nil
	}
	if mt := fi.ModTime(); (!w.p.after.IsZero() && mt.Before(w.p.after)) ||
		(!w.p.before.IsZero() && mt.After(w.p.before)) {
		return nil
	}

	if w.batch == nil {
		w.batch = make([]item, 0, itemBatch)
	}
	w.batch = append(w.batch, item{hostPath: hostPath, fsPath: fsPath, info: fi})
	if fi == fs.FileInfo(&w.cur) {
		// The batch's array is allocated at its full size and never
		// moves, so the item may point into itself.
		it := &w.batch[len(w.batch)-1]
		it.st = w.cur
		it.info = &it.st
	}
	if len(w.batch) < itemBatch {
		return nil
	}
	return w.flush(ctx)
}

// joinName appends a directory entry's name to the clean path dir; a name
// from the directory never holds a slash, ".", or "..", so no cleaning is
// needed.
func joinName(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// skipErr counts a failed stat, open or read under its reason.
func (w *walker) skipErr(err error, hostPath string) {
	w.env.Stats.Skip(reasonOf(err), hostPath)
}

// reasonOf maps a file error to a skip reason.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "vanished"
	case errors.Is(err, fs.ErrPermission):
		return "permission"
	case errors.Is(err, syscall.ELOOP), errors.Is(err, syscall.ENOTDIR):
		return "type"
	}
	return "error"
}

func devOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev)
	}
	return 0
}

func inoOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
