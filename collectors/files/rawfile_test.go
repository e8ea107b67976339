package files

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/collectors/yarascan"
)

// TestOpenRawRefusesSwaps checks the hot-path open against objects put in
// place of the file the walk listed: it must neither follow, nor block,
// nor read a different file.
func TestOpenRawRefusesSwaps(t *testing.T) {
	dir := t.TempDir()
	listed := func(name string) (string, os.FileInfo) {
		p := filepath.Join(dir, name)
		writeFile(t, p, "original", 0o644)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		return p, fi
	}
	tests := []struct {
		name string
		swap func(p string)
		want error
	}{
		{"unchanged", func(string) {}, nil},
		{"replaced by another file", func(p string) {
			writeFile(t, p+".new", "other", 0o644)
			if err := os.Rename(p+".new", p); err != nil {
				t.Fatal(err)
			}
		}, yarascan.ErrNotRegular},
		{"replaced by a symlink", func(p string) {
			_ = os.Remove(p)
			if err := os.Symlink("/etc/passwd", p); err != nil {
				t.Fatal(err)
			}
		}, yarascan.ErrNotRegular},
		{"replaced by a fifo", func(p string) {
			_ = os.Remove(p)
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, yarascan.ErrNotRegular},
		{"removed", func(p string) { _ = os.Remove(p) }, os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, fi := listed(tt.name)
			tt.swap(p)
			done := make(chan error, 1)
			go func() {
				f, err := openRaw(p, fi)
				if err == nil {
					f.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("open blocked")
			}
		})
	}
}

// TestStatInfoMatchesOS checks that the walk's descriptor-relative stat
// reports each kind of object as os.Lstat does.
func TestStatInfoMatchesOS(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "plain"), "x", 0o640)
	writeFile(t, filepath.Join(dir, "suid"), "x", 0o755)
	if err := os.Chmod(filepath.Join(dir, "suid"), 0o755|os.ModeSetuid|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sticky"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "sticky"), 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("plain", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	names := []string{"plain", "suid", "sticky", "link", "fifo", "/dev/null"}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name)
			if filepath.IsAbs(name) {
				p = name
			}
			want, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			var scratch []byte
			got := &statInfo{}
			if err := lstatAt(int(d.Fd()), name, p, &scratch, got); err != nil {
				t.Fatal(err)
			}
			if got.Mode() != want.Mode() || got.Size() != want.Size() ||
				!got.ModTime().Equal(want.ModTime()) || got.IsDir() != want.IsDir() ||
				inoOf(got) != inoOf(want) || devOf(got) != devOf(want) {
				t.Fatalf("lstatAt %v %d %v, os.Lstat %v %d %v", got.Mode(), got.Size(),
					got.ModTime(), want.Mode(), want.Size(), want.ModTime())
			}
		})
	}
	var scratch []byte
	if err := lstatAt(int(d.Fd()), "missing", filepath.Join(dir, "missing"),
		&scratch, &statInfo{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
}

// TestRewrittenAfterListing checks that a small file rewritten in place
// past the in-memory threshold after the walk listed it is reported at
// its size when opened and streamed whole, not cut at the listed size.
func TestRewrittenAfterListing(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "grows")
	writeFile(t, p, "small", 0o644)
	big := make([]byte, wholeReadMax+chunkSize)
	copy(big[wholeReadMax+10:], "tail-marker")
	f := NewFiles(nil)
	f.beforeRead = func(string) {
		// Rewrite in place (same inode) after the walk listed the file.
		if err := os.WriteFile(p, big, 0o644); err != nil {
			t.Error(err)
		}
	}
	rules := []map[string]string{{"name": "t", "text": `rule tail {
		strings: $m = "tail-marker" condition: $m }`}}
	recs, sum, err := collect(t, f, runOpts{root: root}, map[string]any{"yara": rules})
	if err != nil || len(recs) != 1 {
		t.Fatalf("recs %d err %v summary %+v", len(recs), err, sum)
	}
	if sz, _ := recs[0].Int("size"); sz != int64(len(big)) {
		t.Fatalf("size %d, want %d", sz, len(big))
	}
	if y := recs[0].Fields["yara"].([]string); len(y) != 1 || y[0] != "tail" {
		t.Fatalf("yara %v", y)
	}
	checkHashes(t, p, recs[0])
}

// TestFilesBindMountLoop mounts a directory onto a folder inside itself,
// which makes the tree endless to a walker that trusts names; the walk
// must enter it once and count the loop. It needs the right to mount and
// is skipped without it.
func TestFilesBindMountLoop(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "a/file.txt"), "x", 0o644)
	loop := filepath.Join(root, "a/loop")
	if err := os.Mkdir(loop, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(filepath.Join(root, "a"), loop, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("cannot bind-mount here: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(loop, syscall.MNT_DETACH) })

	done := make(chan struct{})
	var n int
	var sum map[string]int
	go func() {
		defer close(done)
		recs, s, err := collect(t, NewFiles(nil), runOpts{root: root}, nil)
		if err != nil {
			t.Error(err)
		}
		n, sum = len(recs), s.Skipped
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("walk did not end on a bind-mount loop")
	}
	if n != 1 || sum["loop"] != 1 {
		t.Fatalf("%d records, skips %v; want the one file and one loop", n, sum)
	}
}

// TestFilesOneFilesystem mounts a tmpfs inside the tree: by default the
// walk stays on the root's file system and counts the mount it passed
// over; with one_filesystem false it goes in. It needs the right to mount
// and is skipped without it.
func TestFilesOneFilesystem(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "here.txt"), "x", 0o644)
	mnt := filepath.Join(root, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })
	writeFile(t, filepath.Join(mnt, "there.txt"), "y", 0o644)

	tests := []struct {
		name   string
		params map[string]any
		paths  []string
		skips  int
	}{
		{"default stays on the root's file system", nil, []string{"/here.txt"}, 1},
		{"one_filesystem false crosses", map[string]any{"one_filesystem": false},
			[]string{"/here.txt", "/mnt/there.txt"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, sum, err := collect(t, NewFiles(nil), runOpts{root: root}, tt.params)
			if err != nil {
				t.Fatal(err)
			}
			var paths []string
			for _, r := range recs {
				paths = append(paths, r.Str("path"))
			}
			if !slices.Equal(paths, tt.paths) || sum.Skipped["filesystem"] != tt.skips {
				t.Fatalf("paths %v skips %v, want %v and %d filesystem", paths, sum.Skipped,
					tt.paths, tt.skips)
			}
		})
	}
}
