package host

import (
	"strings"
	"testing"
	"time"
)

func FuzzParseProcStat(f *testing.F) {
	f.Add([]byte("1234 (miner) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 4 0 " +
		"12345 1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"))
	f.Add([]byte("7 (a) b) c) R 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22"))
	f.Add([]byte("()"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseProcStat(b)
		if err == nil && strings.ContainsRune(st.comm, 0) && !strings.ContainsRune(string(b), 0) {
			t.Errorf("comm %q not from input", st.comm)
		}
	})
}

func TestParseProcStat(t *testing.T) {
	cases := []struct {
		name  string
		in    string
		comm  string
		ppid  int64
		start uint64
		ok    bool
	}{
		{"plain", "42 (sleep) S 7 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 999 0 0", "sleep", 7, 999, true},
		{"paren in name", "42 (a) b (c) S 7 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0",
			"a) b (c", 7, 5, true},
		{"short", "42 (x) S 7", "", 0, 0, false},
		{"no name", "42 x S 7 1 1 0", "", 0, 0, false},
		{"bad ppid", "42 (x) S q 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0", "", 0, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := parseProcStat([]byte(tc.in))
			if (err == nil) != tc.ok {
				t.Fatalf("err %v", err)
			}
			if tc.ok && (st.comm != tc.comm || st.ppid != tc.ppid || st.startTick != tc.start) {
				t.Errorf("got %+v", st)
			}
		})
	}
}

func FuzzParseWtmp(f *testing.F) {
	f.Add(utmpRecord(utmpUserProcess, "alice", "10.0.0.1", 1722846000))
	f.Add(append(utmpRecord(utmpUserProcess, "\xff\xfe", "", -1), 0, 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		for user, l := range parseWtmp(b) {
			if user == "" || l.at.Before(time.Unix(-1<<31, 0)) {
				t.Errorf("bad login %q %+v", user, l)
			}
		}
	})
}

func FuzzSudoersLines(f *testing.F) {
	f.Add("User_Alias A = b, %c : D = A\nA ALL=(ALL) ALL\n%c ALL=ALL\n#includedir x\n")
	f.Add("\\\n\\\n= =\n")
	f.Fuzz(func(t *testing.T, text string) {
		r := &sudoersReader{
			root:    t.TempDir(),
			seen:    map[string]bool{},
			out:     &sudoers{aliases: map[string][]string{}},
			onError: func(string, error) {},
		}
		for _, line := range logicalLines(text) {
			r.line("/etc/sudoers", line)
		}
		p := principal{user: "b", groups: map[string]bool{"c": true}}
		_ = r.out.grants(p)
		_ = r.out.namedUsers()
	})
}

func FuzzSnapshots(f *testing.F) {
	f.Add([]byte(`[{"pid":1,"ppid":0,"name":"x","exe":"/x (deleted)",` +
		`"started":"2024-08-05T08:22:01Z"}]`))
	f.Add([]byte(`[{"proto":"tcp","local":"[::1]:22","remote":"1.2.3.4:99999","pid":1}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if rows, err := decodeProcessSnapshot(b); err == nil {
			by := map[int64]snapProcess{}
			for _, r := range rows {
				by[r.Pid] = r
			}
			for _, r := range rows {
				exe, del := strings.CutSuffix(r.Exe, deletedSuffix)
				_ = snapProcessRecord(r, exe, del, by, time.Time{}, "f")
			}
		}
		if rows, err := decodeConnectionSnapshot(b); err == nil {
			for _, r := range rows {
				_, _ = snapConnectionRecord(r, nil, time.Time{}, "f")
			}
		}
	})
}
