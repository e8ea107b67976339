package files

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/tasks"
)

func TestFilesScenario(t *testing.T) {
	const minerSHA = "e86bbaf6fc9d8dfe57ef9e4edc973a5f0880f02eec2fa4819ee824c0c7ef51ec"
	both := []string{"coinminer_cpu_binary", "coinminer_stratum_config"}
	cfg := []string{"coinminer_stratum_config"}
	tests := []struct {
		name    string
		host    string
		want    map[string][]string // path -> yara matches; unlisted paths match nothing
		workers int
	}{
		{name: "vm-miner01", host: "vm-miner01", workers: 1, want: map[string][]string{
			"/usr/local/bin/miner": both, "/etc/miner.conf": cfg}},
		{name: "vm-miner02 two workers", host: "vm-miner02", workers: 2, want: map[string][]string{
			"/opt/.cache/kworkerd": both, "/opt/.cache/config.json": cfg}},
		{name: "web-01 clean", host: "web-01", workers: 1, want: map[string][]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join(scenario, tt.host, "root")
			recs, sum, err := collect(t, NewFiles(nil), runOpts{root: root},
				map[string]any{"roots": []string{"/"}, "yara": minerRules(t),
					"workers": tt.workers})
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) == 0 || sum.Emitted != len(recs) {
				t.Fatalf("records %d, summary %+v", len(recs), sum)
			}
			for _, r := range recs {
				p := r.Str("path")
				if r.Kind != tasks.KindFile || strings.HasPrefix(p, scenario) {
					t.Fatalf("bad record %+v", r)
				}
				got, _ := r.Fields["yara"].([]string)
				if want := tt.want[p]; !slices.Equal(got, want) {
					t.Errorf("%s: yara %v, want %v", p, got, want)
				}
				checkHashes(t, filepath.Join(root, p), r)
			}
			for p := range tt.want {
				if _, ok := byPath(recs)[p]; !ok {
					t.Errorf("no record for %s", p)
				}
			}
			if m, ok := byPath(recs)["/usr/local/bin/miner"]; ok {
				if m.Str("sha256") != minerSHA || m.Str("file_type") != "elf" ||
					m.Str("mode") != "-rwxr-xr-x" || m.Str("name") != "miner" {
					t.Errorf("miner record %v", m.Fields)
				}
			}
		})
	}
}

// checkHashes recomputes the digests of fsPath and compares.
func checkHashes(t *testing.T, fsPath string, r tasks.Record) {
	t.Helper()
	b, err := os.ReadFile(fsPath)
	if err != nil {
		t.Fatal(err)
	}
	m, s1, s256 := md5.Sum(b), sha1.Sum(b), sha256.Sum256(b)
	if r.Str("md5") != hex.EncodeToString(m[:]) || r.Str("sha1") != hex.EncodeToString(s1[:]) ||
		r.Str("sha256") != hex.EncodeToString(s256[:]) {
		t.Errorf("%s: hashes %s %s %s", fsPath, r.Str("md5"), r.Str("sha1"), r.Str("sha256"))
	}
	if sz, _ := r.Int("size"); sz != int64(len(b)) {
		t.Errorf("%s: size %d, want %d", fsPath, sz, len(b))
	}
}

func TestFilesRealRules(t *testing.T) {
	paths, _ := filepath.Glob("../../testdata/real/yara/*.yar")
	if len(paths) == 0 {
		t.Fatal("no real rules")
	}
	var srcs []map[string]string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, map[string]string{"name": filepath.Base(p), "text": string(b)})
	}
	root := filepath.Join(scenario, "web-01/root")
	recs, _, err := collect(t, NewFiles(nil), runOpts{root: root},
		map[string]any{"yara": srcs})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if _, ok := r.Fields["yara"].([]string); !ok {
			t.Errorf("%s: no yara field", r.Str("path"))
		}
	}
}

func TestFilesBadParams(t *testing.T) {
	tests := []struct {
		name   string
		params any
		want   string
	}{
		{"relative root", map[string]any{"roots": []string{"etc"}}, "not absolute"},
		{"bad hash", map[string]any{"hashes": []string{"crc32"}}, "unknown hash"},
		{"bad time", map[string]any{"modified_after": "yesterday"}, "RFC 3339"},
		{"bad glob", map[string]any{"include": []string{"[x"}}, "bad pattern"},
		{"unknown field", map[string]any{"rootz": []string{"/"}}, "unknown field"},
		{"too many workers", map[string]any{"workers": 1000}, "workers"},
		{"size window", map[string]any{"min_size": 10, "max_size": 5}, "size window"},
		{"yara syntax", map[string]any{"yara": []map[string]string{
			{"name": "bad.yar", "text": "rule x {\ncondition: nope(\n}"}}}, "bad.yar"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, _ := json.Marshal(tt.params)
			err := NewFiles(nil).Validate(raw)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestFilesSpecialObjects(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "d/plain.txt"), "hello\n", 0o644)
	if err := syscall.Mkfifo(filepath.Join(root, "d/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A loop of symlinks, and a directory link back to the root.
	_ = os.Symlink("loop2", filepath.Join(root, "d/loop1"))
	_ = os.Symlink("loop1", filepath.Join(root, "d/loop2"))
	if err := os.Symlink("..", filepath.Join(root, "d/up")); err != nil {
		t.Fatal(err)
	}
	sock, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(sock)
	addr := &syscall.SockaddrUnix{Name: filepath.Join(root, "d/sock")}
	if err := syscall.Bind(sock, addr); err != nil {
		t.Fatal(err)
	}

	done := make(chan struct{})
	var recs []tasks.Record
	var sum collectors.Summary
	go func() {
		defer close(done)
		recs, sum, err = collect(t, NewFiles(nil), runOpts{root: root},
			map[string]any{"roots": []string{"/"}})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("walk hung")
	}
	if err != nil {
		t.Fatal(err)
	}
	got := byPath(recs)
	tests := []struct {
		name, path, fileType, target string
	}{
		{"regular file", "/d/plain.txt", "text", ""},
		{"symlink loop recorded, not followed", "/d/loop1", "symlink", "loop2"},
		{"dir symlink recorded, not entered", "/d/up", "symlink", ".."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := got[tt.path]
			if !ok || r.Str("file_type") != tt.fileType || r.Str("link_target") != tt.target {
				t.Fatalf("record %v", r.Fields)
			}
		})
	}
	if len(recs) != 4 {
		t.Errorf("records %d, want 4 (plain, loop1, loop2, up)", len(recs))
	}
	if sum.Skipped["type"] != 2 {
		t.Errorf("type skips %v, want fifo and socket", sum.Skipped)
	}
}

func TestFilesVanished(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "a"), "a", 0o644)
	writeFile(t, filepath.Join(root, "b"), "b", 0o644)
	f := NewFiles(nil)
	f.beforeRead = func(hostPath string) {
		if hostPath == "/b" {
			_ = os.Remove(filepath.Join(root, "b"))
		}
	}
	recs, sum, err := collect(t, f, runOpts{root: root}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Str("path") != "/a" {
		t.Fatalf("records %v", recs)
	}
	if sum.Skipped["vanished"] != 1 || !slices.Equal(sum.Samples["vanished"], []string{"/b"}) {
		t.Fatalf("summary %+v", sum)
	}
}

func TestFilesNonUTF8Name(t *testing.T) {
	root := t.TempDir()
	name := "caf\xe9-\xff.bin"
	writeFile(t, filepath.Join(root, name), "x", 0o644)
	recs, _, err := collect(t, NewFiles(nil), runOpts{root: root}, nil)
	if err != nil || len(recs) != 1 {
		t.Fatalf("recs %v err %v", recs, err)
	}
	want := "/" + name
	if recs[0].Str("path") != want {
		t.Fatalf("path %q", recs[0].Str("path"))
	}

	// After a JSON round trip path is mangled, path_b64 is not.
	b, err := json.Marshal(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	var back tasks.Record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(back.Str("path_b64"))
	if err != nil || string(raw) != want {
		t.Fatalf("path_b64 %q -> %q, %v", back.Str("path_b64"), raw, err)
	}
	if _, err := os.Stat(filepath.Join(root, string(raw))); err != nil {
		t.Fatalf("decoded path does not name the file: %v", err)
	}
}

func TestFilesLimits(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "etc/a.conf"), "a", 0o644)
	writeFile(t, filepath.Join(root, "etc/b.conf"), "b", 0o644)
	writeFile(t, filepath.Join(root, "etc/c.txt"), "c", 0o644)
	writeFile(t, filepath.Join(root, "var/lib/huntmesh/intel.yar"), "rule", 0o644)
	writeFile(t, filepath.Join(root, "var/big"), strings.Repeat("x", 100), 0o644)
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(root, "etc/b.conf"), old, old); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		params    map[string]any
		o         runOpts
		wantPaths []string
		wantSkip  map[string]int
		cut       string
	}{
		{
			name:      "record cap",
			params:    map[string]any{},
			o:         runOpts{budget: collectors.Budget{MaxRecords: 2}},
			wantPaths: nil, // any two
			cut:       "record cap",
		},
		{
			name:      "record cap with hashes queued behind the scan",
			params:    map[string]any{"yara": minerRules(t), "workers": 2},
			o:         runOpts{budget: collectors.Budget{MaxRecords: 2}},
			wantPaths: nil, // any two
			cut:       "record cap",
		},
		{
			name:      "env exclude",
			params:    map[string]any{"max_size": 50},
			o:         runOpts{exclude: []string{"/var/lib/huntmesh"}},
			wantPaths: []string{"/etc/a.conf", "/etc/b.conf", "/etc/c.txt"},
			wantSkip:  map[string]int{"excluded": 1, "size": 1},
		},
		{
			name: "include and exclude globs",
			params: map[string]any{"roots": []string{"/etc"},
				"include": []string{"*.conf"}, "exclude": []string{"/etc/a.*"}},
			wantPaths: []string{"/etc/b.conf"},
			wantSkip:  map[string]int{"excluded": 1},
		},
		{
			name:      "modified after",
			params:    map[string]any{"roots": []string{"/etc"}, "modified_after": "2021-01-01T00:00:00Z"},
			wantPaths: []string{"/etc/a.conf", "/etc/c.txt"},
		},
		{
			name:      "modified before",
			params:    map[string]any{"roots": []string{"/etc"}, "modified_before": "2021-01-01T00:00:00Z"},
			wantPaths: []string{"/etc/b.conf"},
		},
		{
			name:      "root outside tree is not escaped",
			params:    map[string]any{"roots": []string{"/../../etc"}},
			wantPaths: []string{"/etc/a.conf", "/etc/b.conf", "/etc/c.txt"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.root = root
			recs, sum, err := collect(t, NewFiles(nil), tt.o, tt.params)
			if err != nil {
				t.Fatal(err)
			}
			var paths []string
			for _, r := range recs {
				paths = append(paths, r.Str("path"))
			}
			if tt.wantPaths != nil && !slices.Equal(paths, tt.wantPaths) {
				t.Errorf("paths %v, want %v", paths, tt.wantPaths)
			}
			if tt.cut != "" && (sum.CutBy != tt.cut || len(recs) != 2) {
				t.Errorf("summary %+v with %d records", sum, len(recs))
			}
			for k, v := range tt.wantSkip {
				if sum.Skipped[k] != v {
					t.Errorf("skipped %v, want %s=%d", sum.Skipped, k, v)
				}
			}
		})
	}
}

func TestFilesCache(t *testing.T) {
	root := t.TempDir()
	for i := range 20 {
		writeFile(t, filepath.Join(root, "d", string(rune('a'+i))), strings.Repeat("z", i), 0o644)
	}
	writeFile(t, filepath.Join(root, "d/miner.conf"),
		`{"pools":[{"url":"stratum+tcp://pool.example:3333"}]}`, 0o644)
	cache := NewHashCache(0)
	f := NewFiles(cache)
	params := map[string]any{"yara": minerRules(t)}

	first, _, err := collect(t, f, runOpts{root: root}, params)
	if err != nil {
		t.Fatal(err)
	}
	if f.FilesRead() != 21 || cache.Len() != 21 {
		t.Fatalf("first scan read %d, cached %d", f.FilesRead(), cache.Len())
	}

	t.Run("unchanged tree reads nothing", func(t *testing.T) {
		before := f.FilesRead()
		again, _, err := collect(t, f, runOpts{root: root}, params)
		if err != nil {
			t.Fatal(err)
		}
		if f.FilesRead() != before {
			t.Fatalf("re-scan read %d files", f.FilesRead()-before)
		}
		a, b := byPath(first), byPath(again)
		for p, r := range a {
			r2 := b[p]
			if r.Str("sha256") != r2.Str("sha256") ||
				!slices.Equal(r.Fields["yara"].([]string), r2.Fields["yara"].([]string)) {
				t.Errorf("%s differs on re-scan", p)
			}
			// A hit reuses the metadata its key fixes; the record must be
			// the one a read would give (atime aside, which reads move).
			if len(r.Fields) != len(r2.Fields) {
				t.Errorf("%s: fields %v on re-scan, %v first", p, r2.Fields, r.Fields)
			}
			for k, v := range r.Fields {
				if k != "atime" && k != "yara" && r2.Fields[k] != v {
					t.Errorf("%s: %s = %v on re-scan, %v first", p, k, r2.Fields[k], v)
				}
			}
		}
		if got := b["/d/miner.conf"].Fields["yara"]; !slices.Equal(got.([]string),
			[]string{"coinminer_stratum_config"}) {
			t.Errorf("cached yara %v", got)
		}
	})

	t.Run("chmod is a new version", func(t *testing.T) {
		if err := os.Chmod(filepath.Join(root, "d/b"), 0o600); err != nil {
			t.Fatal(err)
		}
		before := f.FilesRead()
		again, _, err := collect(t, f, runOpts{root: root}, params)
		if err != nil {
			t.Fatal(err)
		}
		if n := f.FilesRead() - before; n != 1 {
			t.Fatalf("read %d files after one chmod", n)
		}
		rec := byPath(again)["/d/b"]
		if m := rec.Str("mode"); m != "-rw-------" {
			t.Fatalf("mode %q after chmod", m)
		}
	})

	t.Run("changed file and new rules are re-read", func(t *testing.T) {
		writeFile(t, filepath.Join(root, "d/a"), "changed", 0o644)
		before := f.FilesRead()
		if _, _, err := collect(t, f, runOpts{root: root}, params); err != nil {
			t.Fatal(err)
		}
		if n := f.FilesRead() - before; n != 1 {
			t.Fatalf("read %d files after one change", n)
		}
		before = f.FilesRead()
		other := map[string]any{"yara": []map[string]string{
			{"name": "o", "text": "rule o { condition: filesize > 5 }"}}}
		if _, _, err := collect(t, f, runOpts{root: root}, other); err != nil {
			t.Fatal(err)
		}
		if n := f.FilesRead() - before; n != 21 {
			t.Fatalf("read %d files for a new rule set, want 21", n)
		}
	})
}

func TestFilesLargeFileNoSeams(t *testing.T) {
	// A file larger than the in-memory threshold is streamed for hashes
	// and scanned from its descriptor; a string across a read-chunk
	// boundary must still match.
	root := t.TempDir()
	data := make([]byte, wholeReadMax+3*chunkSize)
	marker := "huntmesh-seam-marker"
	copy(data[2*chunkSize-len(marker)/2:], marker)
	writeFile(t, filepath.Join(root, "big.bin"), string(data), 0o644)
	rules := []map[string]string{{"name": "s", "text": `rule seam {
		strings: $m = "` + marker + `" condition: $m }`}}
	recs, _, err := collect(t, NewFiles(nil), runOpts{root: root},
		map[string]any{"yara": rules})
	if err != nil || len(recs) != 1 {
		t.Fatalf("recs %d err %v", len(recs), err)
	}
	if got := recs[0].Fields["yara"].([]string); !slices.Equal(got, []string{"seam"}) {
		t.Fatalf("yara %v", got)
	}
	checkHashes(t, filepath.Join(root, "big.bin"), recs[0])
}

func TestFilesContextCancel(t *testing.T) {
	root := t.TempDir()
	for i := range 50 {
		writeFile(t, filepath.Join(root, "f", string(rune('A'+i))), "data", 0o644)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	env := collectors.NewEnv("files", root, "h", collectors.Budget{}, nil,
		func(tasks.Record) error {
			n++
			if n == 3 {
				cancel()
			}
			return nil
		})
	err := NewFiles(nil).Collect(ctx, env, json.RawMessage(`{"workers":2}`))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n > 10 {
		t.Fatalf("emitted %d records after cancel", n)
	}
}

func TestFileType(t *testing.T) {
	tests := []struct {
		name, head, want string
	}{
		{"empty", "", "empty"},
		{"elf", "\x7fELF\x02\x01", "elf"},
		{"pe", "MZ\x90\x00", "pe"},
		{"script", "#!/bin/sh\n", "script"},
		{"gzip", "\x1f\x8b\x08", "gzip"},
		{"zip", "PK\x03\x04", "zip"},
		{"json", "  {\"a\": 1}", "json"},
		{"text", "hello world\n", "text"},
		{"binary data", "\x00\x01\x02", "data"},
		{"latin-1 text is data", "caf\xe9 au lait", "data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fileType([]byte(tt.head)); got != tt.want {
				t.Fatalf("fileType = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzFilesParams(f *testing.F) {
	f.Add([]byte(`{"roots":["/etc"],"include":["*.conf"],"hashes":["md5"],"workers":2}`))
	f.Add([]byte(`{"modified_after":"2024-01-01T00:00:00Z","max_size":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseFilesParams(b)
		if err != nil {
			return
		}
		if p.Workers < 1 || p.Workers > maxWorkers || p.MaxSize < p.MinSize {
			t.Fatalf("accepted bad params %+v", p)
		}
		_ = matchAny(p.Include, "/etc/x.conf")
	})
}

func FuzzFileType(f *testing.F) {
	f.Add([]byte("\x7fELF"))
	f.Add([]byte(" [1]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if fileType(b) == "" {
			t.Fatal("no type")
		}
	})
}
