package files

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/collectors/yarascan"
	"github.com/huntmesh/huntmesh/tasks"
)

func TestFetch(t *testing.T) {
	root := filepath.Join(scenario, "vm-miner01/root")
	blobs := &memBlobs{}
	recs, _, err := collect(t, NewFetch(), runOpts{root: root, blobs: blobs},
		map[string]any{"path": "/usr/local/bin/miner"})
	if err != nil || len(recs) != 1 {
		t.Fatalf("recs %v err %v", recs, err)
	}
	r := recs[0]
	want, _ := os.ReadFile(filepath.Join(root, "usr/local/bin/miner"))
	sum := sha256.Sum256(want)
	hexSum := hex.EncodeToString(sum[:])
	size, _ := r.Int("size")
	if r.Kind != tasks.KindBlob || r.Str("blob_sha256") != hexSum || r.Str("sha256") != hexSum ||
		size != int64(len(want)) || r.Str("path") != "/usr/local/bin/miner" ||
		r.Str("what") != "file-fetch" || len(r.Str("md5")) != 32 || len(r.Str("sha1")) != 40 {
		t.Fatalf("record %v", r.Fields)
	}
	if string(blobs.blobs[hexSum]) != string(want) {
		t.Fatal("blob content differs")
	}
}

func TestFetchRefuses(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "big"), strings.Repeat("x", 2048), 0o644)
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		params  map[string]any
		noBlobs bool
		want    error
		msg     string
	}{
		{name: "over max_size", params: map[string]any{"path": "/big", "max_size": 1024},
			want: ErrTooLarge},
		{name: "symlink", params: map[string]any{"path": "/link"}, want: yarascan.ErrNotRegular},
		{name: "fifo", params: map[string]any{"path": "/fifo"}, want: yarascan.ErrNotRegular},
		{name: "missing", params: map[string]any{"path": "/nope"}, want: os.ErrNotExist},
		{name: "no blob sink", params: map[string]any{"path": "/big"}, noBlobs: true,
			want: ErrNoBlobSink},
		{name: "relative path", params: map[string]any{"path": "big"}, msg: "not absolute"},
		{name: "no path", params: map[string]any{}, msg: "not absolute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := runOpts{root: root, blobs: &memBlobs{}}
			if tt.noBlobs {
				o.blobs = nil
			}
			done := make(chan error, 1)
			go func() {
				_, _, err := collect(t, NewFetch(), o, tt.params)
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("fetch hung")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.msg != "" && (err == nil || !strings.Contains(err.Error(), tt.msg)) {
				t.Fatalf("err = %v, want %q", err, tt.msg)
			}
		})
	}
}
