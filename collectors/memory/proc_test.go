package memory

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/huntmesh/huntmesh/collectors"
)

func TestParseMapLine(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       Region
		wantErr    string
	}{
		{"anonymous", "7f0000000000-7f0000021000 rw-p 00000000 00:00 0 ",
			Region{Start: 0x7f0000000000, End: 0x7f0000021000, Perms: "rw-p"}, ""},
		{"no trailing space", "7f0000000000-7f0000021000 rw-p 00000000 00:00 0",
			Region{Start: 0x7f0000000000, End: 0x7f0000021000, Perms: "rw-p"}, ""},
		{"heap", "55d0c0a00000-55d0c0a21000 rw-p 00000000 00:00 0          [heap]",
			Region{Start: 0x55d0c0a00000, End: 0x55d0c0a21000, Perms: "rw-p", Path: "[heap]"}, ""},
		{"file with spaces", "400000-401000 r-xp 00001000 08:01 1234   /opt/my dir/a b (deleted)",
			Region{Start: 0x400000, End: 0x401000, Perms: "r-xp", Offset: 0x1000, Inode: 1234,
				Path: "/opt/my dir/a b (deleted)"}, ""},
		{"vsyscall", "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0  [vsyscall]",
			Region{Start: 0xffffffffff600000, End: 0xffffffffff601000, Perms: "--xp",
				Path: "[vsyscall]"}, ""},
		{"no dash", "400000 r-xp 0 08:01 1", Region{}, "bad address range"},
		{"bad start", "zz-401000 r-xp 0 08:01 1", Region{}, "bad start"},
		{"bad end", "400000-zz r-xp 0 08:01 1", Region{}, "bad end"},
		{"backwards", "401000-400000 r-xp 0 08:01 1", Region{}, "ends before"},
		{"bad perms", "400000-401000 rx 0 08:01 1", Region{}, "bad permissions"},
		{"bad offset", "400000-401000 r-xp q 08:01 1", Region{}, "bad offset"},
		{"bad inode", "400000-401000 r-xp 0 08:01 x", Region{}, "bad inode"},
		{"truncated", "400000-401000", Region{}, "bad permissions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMapLine(tc.line)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSkipReason(t *testing.T) {
	for _, tc := range []struct {
		name, perms, path string
		fileBacked        bool
		want              string
	}{
		{"heap", "rw-p", "[heap]", true, ""},
		{"anonymous", "rw-p", "", false, ""},
		{"no read", "---p", "", true, "unreadable"},
		{"write only", "-w-p", "", true, "unreadable"},
		{"vvar", "r--p", "[vvar]", true, "pseudo"},
		{"vsyscall", "r-xp", "[vsyscall]", true, "pseudo"},
		{"gpu device", "rw-s", "/dev/dri/card0", true, "device"},
		{"shm file", "rw-s", "/dev/shm/x", false, ""},
		{"shared anonymous", "rw-s", "/dev/zero (deleted)", false, ""},
		{"library kept", "r-xp", "/usr/lib/libc.so.6", true, ""},
		{"library left out", "r-xp", "/usr/lib/libc.so.6", false, "file-backed"},
		{"memfd kept", "rwxp", "/memfd:payload (deleted)", false, ""},
		{"sysv kept", "rw-s", "/SYSV00000000 (deleted)", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Region{Start: 0x1000, End: 0x2000, Perms: tc.perms, Path: tc.path}
			if got := r.skipReason(tc.fileBacked); got != tc.want {
				t.Errorf("skipReason = %q, want %q", got, tc.want)
			}
		})
	}
}

func FuzzParseMaps(f *testing.F) {
	f.Add([]byte("400000-401000 r-xp 00000000 08:01 1234 /bin/x\n7ff-800 rw-p 0 00:00 0\n"))
	f.Add([]byte("55d0c0a00000-55d0c0a21000 rw-p 00000000 00:00 0          [heap]\n"))
	f.Add([]byte("-\n \n\x00 r 0 0 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		regs, err := parseMaps(bytes.NewReader(b))
		if len(regs) > maxRegions {
			t.Fatalf("%d regions over the bound", len(regs))
		}
		for _, r := range regs {
			if r.End < r.Start || len(r.Perms) != 4 {
				t.Fatalf("accepted bad region %+v (err %v)", r, err)
			}
		}
	})
}

// fakeProc builds a process table with one process, pid 4242, whose
// "memory" is a sparse file: 12 KiB of data at 0x10000, nothing after.
func fakeProc(t *testing.T, data []byte) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "4242")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stat := "4242 (fake (proc)) S" + strings.Repeat(" 7", 40) + "\n"
	maps := strings.Join([]string{
		"10000-13000 rw-p 00000000 00:00 0 [heap]",
		"20000-21000 rw-p 00000000 00:00 0 ",
		"30000-31000 rw-s 00000000 00:05 7 /dev/nvidia0",
		"40000-41000 ---p 00000000 00:00 0 ",
		"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]",
	}, "\n") + "\n"
	files := map[string]string{"stat": stat, "comm": "fake (proc)\n", "maps": maps}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mem, err := os.Create(filepath.Join(dir, "mem"))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	if _, err := mem.WriteAt(data, 0x10000); err != nil {
		t.Fatal(err)
	}
	return root
}

// fakeData is 12 KiB of non-zero bytes with the marker in the middle.
func fakeData() []byte {
	data := bytes.Repeat([]byte{0xa5}, 0x3000)
	copy(data[0x1800:], marker)
	return data
}

func TestMemdumpFakeProc(t *testing.T) {
	data := fakeData()
	root := fakeProc(t, data)
	blobs := &memBlobs{}
	recs, sum, err := run(t, &Memdump{ProcRoot: root}, collectors.Budget{}, blobs, `{"pid": 4242}`)
	if err != nil {
		t.Fatalf("memdump: %v", err)
	}
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1", len(recs))
	}
	if got := blobs.get(recs[0].Str("blob_sha256")); !bytes.Equal(got, data) {
		t.Errorf("blob of %d bytes is not the heap's %d", len(got), len(data))
	}
	wantMap := []string{"10000-13000 rw-p 0 [heap]"}
	if got := recs[0].Strs("map"); fmt.Sprint(got) != fmt.Sprint(wantMap) {
		t.Errorf("map %q, want %q", got, wantMap)
	}
	if recs[0].Str("process_name") != "fake (proc)" {
		t.Errorf("process_name %q", recs[0].Str("process_name"))
	}

	// The region past the end of the file reads like EIO from a live
	// process: skipped and counted, not fatal. The device is never read.
	if sum.Skipped["unreadable"] != 1 || sum.Samples["unreadable"][0] != "20000-21000 rw-p" {
		t.Errorf("unreadable skips %v %q", sum.Skipped, sum.Samples["unreadable"])
	}
	if sum.Skipped["device"] != 1 {
		t.Errorf("device skips %v", sum.Skipped)
	}
}

func TestYaraMemoryFakeProc(t *testing.T) {
	root := fakeProc(t, fakeData())
	recs, sum, err := run(t, &YaraMemory{ProcRoot: root}, collectors.Budget{}, nil,
		yaraParams(t, map[string]any{"names": []string{"fake (proc)"}}))
	if err != nil {
		t.Fatalf("yara-memory: %v", err)
	}
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1 (skips %v)", len(recs), sum.Skipped)
	}
	for field, want := range map[string]int64{
		"pid": 4242, "address": 0x10000, "offset": 0, "region_size": 0x3000,
	} {
		if got, _ := recs[0].Int(field); got != want {
			t.Errorf("%s = %#x, want %#x", field, got, want)
		}
	}
	if sum.Skipped["unreadable"] != 1 || sum.Skipped["device"] != 1 {
		t.Errorf("skips %v, want one unreadable and one device", sum.Skipped)
	}
}
