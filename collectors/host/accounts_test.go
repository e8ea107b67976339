package host

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/tasks"
)

// writeTree writes files (host path -> content) under root.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// utmpRecord builds one binary utmp record.
func utmpRecord(typ int16, user, host string, sec int32) []byte {
	b := make([]byte, utmpSize)
	binary.LittleEndian.PutUint16(b[utmpTypeOff:], uint16(typ))
	copy(b[utmpUserOff:utmpUserOff+utmpUserLen], user)
	copy(b[utmpHostOff:utmpHostOff+utmpHostLen], host)
	binary.LittleEndian.PutUint32(b[utmpSecOff:], uint32(sec))
	return b
}

func accountFixture(t *testing.T) string {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/bash\n" +
			"# a comment\n" +
			"alice:x:1000:1000:Alice:/home/alice:/bin/bash\n" +
			"toor:x:0:0::/var/tmp/.t:/bin/sh\n" +
			"www-data:x:33:33::/var/www:/usr/sbin/nologin\n" +
			"broken line\n",
		"etc/group": "root:x:0:\nsudo:x:27:alice\nalice:x:1000:\nadm:x:4:alice,www-data\n",
		"etc/sudoers": "Defaults env_reset\n" +
			"User_Alias OPS = www-data\n" +
			"root ALL=(ALL:ALL) ALL\n" +
			"%sudo ALL=(ALL:ALL) ALL\n" +
			"@includedir /etc/sudoers.d\n",
		"etc/sudoers.d/backdoor": "toor ALL=(ALL) NOPASSWD: ALL\n" +
			"OPS ALL=(root) /usr/bin/systemctl \\\n    restart nginx\n" +
			"ghost ALL=(ALL) NOPASSWD: ALL\n",
		"etc/sudoers.d/README.txt": "alice ALL=(ALL) ALL\n",
	})
	var wtmp []byte
	wtmp = append(wtmp, utmpRecord(utmpUserProcess, "alice", "10.20.1.15", 1722840000)...)
	wtmp = append(wtmp, utmpRecord(8, "alice", "", 1722843000)...)
	wtmp = append(wtmp, utmpRecord(utmpUserProcess, "alice", "10.20.1.16", 1722846000)...)
	wtmp = append(wtmp, utmpRecord(utmpUserProcess, "toor", "203.0.113.77", 1722841000)...)
	wtmp = append(wtmp, 1, 2, 3) // a torn final record
	writeTree(t, root, map[string]string{"var/log/wtmp": string(wtmp)})
	return root
}

func TestAccountsFixture(t *testing.T) {
	root := accountFixture(t)
	recs, sum := run(t, NewAccounts(), root, collectors.Budget{}, ``)
	byUser := map[string]tasks.Record{}
	for _, r := range recs {
		byUser[r.Str("user")] = r
	}
	if len(recs) != 5 {
		t.Fatalf("got %d records (%v), want 4 accounts and 1 sudo-only name", len(recs), sum)
	}

	cases := []struct {
		user string
		want map[string]any
		sudo []string
	}{
		{
			user: "root",
			want: map[string]any{"uid": int64(0), "uid0": false},
			sudo: []string{"/etc/sudoers: root ALL=(ALL:ALL) ALL"},
		},
		{
			user: "toor",
			want: map[string]any{
				"uid": int64(0), "uid0": true, "home": "/var/tmp/.t",
				"last_login": "2024-08-05T06:56:40Z", "last_login_from": "203.0.113.77",
			},
			sudo: []string{"/etc/sudoers.d/backdoor: toor ALL=(ALL) NOPASSWD: ALL"},
		},
		{
			user: "alice",
			want: map[string]any{
				"uid": int64(1000), "uid0": false, "shell": "/bin/bash",
				"last_login": "2024-08-05T08:20:00Z", "last_login_from": "10.20.1.16",
			},
			sudo: []string{"/etc/sudoers: %sudo ALL=(ALL:ALL) ALL"},
		},
		{
			user: "www-data",
			want: map[string]any{"uid0": false},
			sudo: []string{"/etc/sudoers.d/backdoor: OPS ALL=(root) /usr/bin/systemctl " +
				"restart nginx"},
		},
		{
			user: "ghost",
			sudo: []string{"/etc/sudoers.d/backdoor: ghost ALL=(ALL) NOPASSWD: ALL"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.user, func(t *testing.T) {
			rec, ok := byUser[tc.user]
			if !ok {
				t.Fatal("missing")
			}
			for k, v := range tc.want {
				if rec.Fields[k] != v {
					t.Errorf("%s = %#v, want %#v", k, rec.Fields[k], v)
				}
			}
			if got := rec.Strs("sudo"); !reflect.DeepEqual(got, tc.sudo) {
				t.Errorf("sudo = %q, want %q", got, tc.sudo)
			}
		})
	}
	alice := byUser["alice"]
	if got := alice.Strs("groups"); !reflect.DeepEqual(got, []string{"adm", "alice", "sudo"}) {
		t.Errorf("alice groups = %q", got)
	}
}

func TestAccountsCountsUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		// root reads mode-000 files, so use a folder where a file belongs.
		root := accountFixture(t)
		sudoers := filepath.Join(root, "etc", "sudoers")
		if err := os.Remove(sudoers); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(sudoers, 0o755); err != nil {
			t.Fatal(err)
		}
		_, sum := run(t, NewAccounts(), root, collectors.Budget{}, ``)
		if sum.Skipped["unreadable"] != 1 {
			t.Errorf("skipped %+v, want one unreadable", sum.Skipped)
		}
		return
	}
	root := accountFixture(t)
	if err := os.Chmod(filepath.Join(root, "etc", "sudoers"), 0); err != nil {
		t.Fatal(err)
	}
	_, sum := run(t, NewAccounts(), root, collectors.Budget{}, ``)
	if sum.Skipped["permission"] != 1 {
		t.Errorf("skipped %+v, want one permission", sum.Skipped)
	}
}

func TestAccountsRecordCap(t *testing.T) {
	recs, sum := run(t, NewAccounts(), accountFixture(t), collectors.Budget{MaxRecords: 2}, ``)
	if len(recs) != 2 || sum.CutBy != "record cap" {
		t.Errorf("records %d cut by %q", len(recs), sum.CutBy)
	}
}

// TestAccountsReadBudget checks that the accounts collector pays for what
// it reads: a wtmp larger than the read budget allows within the wall
// time cuts the run short, and the result says so.
func TestAccountsReadBudget(t *testing.T) {
	root := accountFixture(t)
	var wtmp []byte
	for i := range 40 {
		wtmp = append(wtmp, utmpRecord(utmpUserProcess, "alice", "10.20.1.15",
			1722840000+int32(i))...)
	}
	writeTree(t, root, map[string]string{"var/log/wtmp": string(wtmp)})
	budget := collectors.Budget{ReadBytesPerSec: 2000, WallTime: 500 * time.Millisecond}
	start := time.Now()
	recs, sum := run(t, NewAccounts(), root, budget, ``)
	if sum.CutBy != "wall time" || len(recs) != 0 {
		t.Fatalf("%d records, cut by %q after %v; want the wall time to cut a %d-byte read",
			len(recs), sum.CutBy, time.Since(start), len(wtmp))
	}

	// Without the wtmp the same budget is enough.
	recs, sum = run(t, NewAccounts(), root, budget, `{"logins":false}`)
	if sum.CutBy != "" || len(recs) == 0 {
		t.Fatalf("%d records, cut by %q without logins", len(recs), sum.CutBy)
	}
}

func TestAccountsEmptyRoot(t *testing.T) {
	recs, sum := run(t, NewAccounts(), t.TempDir(), collectors.Budget{}, `{"logins":false}`)
	if len(recs) != 0 || len(sum.Skipped) != 0 {
		t.Errorf("records %d skipped %+v", len(recs), sum.Skipped)
	}
}

func TestParseWtmpNewest(t *testing.T) {
	b := append(utmpRecord(utmpUserProcess, "bob", "a", 200),
		utmpRecord(utmpUserProcess, "bob", "b", 100)...)
	got := parseWtmp(b)
	want := login{at: time.Unix(200, 0).UTC(), from: "a"}
	if got["bob"] != want {
		t.Errorf("got %+v, want %+v", got["bob"], want)
	}
}

func TestSudoersStaysUnderRoot(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	writeTree(t, base, map[string]string{
		"outside":         "alice ALL=(ALL) NOPASSWD: ALL\n",
		"outdir/grant":    "alice ALL=(ALL) NOPASSWD: ALL\n",
		"root/etc/group":  "alice:x:1000:\n",
		"root/etc/passwd": "alice:x:1000:1000::/home/alice:/bin/sh\n",
		"root/etc/sudoers": "@include ../../outside\n" +
			"@include /../../../outside\n" +
			"#includedir ../../outdir\n",
	})
	if err := os.Symlink(filepath.Join(base, "outdir"),
		filepath.Join(root, "etc", "sudoers.d")); err != nil {
		t.Fatal(err)
	}
	recs, sum := run(t, NewAccounts(), root, collectors.Budget{}, `{"logins":false}`)
	if len(recs) != 1 {
		t.Fatalf("got %d records", len(recs))
	}
	if got := recs[0].Strs("sudo"); len(got) != 0 {
		t.Errorf("read a grant from outside the root: %q", got)
	}
	if sum.Skipped["unreadable"] != 1 {
		t.Errorf("symlinked sudoers.d not counted: %+v", sum.Skipped)
	}
}
