package logs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/tasks"
)

// seedLines adds every line of the given test files to the corpus.
func seedLines(f *testing.F, paths ...string) {
	for _, p := range paths {
		b, err := os.ReadFile(filepath.Join(testdata, p))
		if err != nil {
			f.Fatal(err)
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			f.Add(line)
		}
	}
}

// fieldsValid checks what the fuzz targets demand of any record.
func fieldsValid(t *testing.T, rec tasks.Record) {
	kind, ok := schema[rec.Kind]
	if !ok {
		t.Fatalf("unknown kind %q", rec.Kind)
	}
	for k, v := range rec.Fields {
		if _, ok := kind[k]; !ok {
			if _, ok := common[k]; !ok {
				t.Fatalf("%s field %q outside the schema", rec.Kind, k)
			}
		}
		switch v.(type) {
		case string, int64, float64, bool, []string:
		default:
			t.Fatalf("%s.%s has type %T", rec.Kind, k, v)
		}
	}
}

func FuzzNDJSONMapper(f *testing.F) {
	seedLines(f, "cryptominer/app-01/sysmon.ndjson", "cryptominer/app-01/edr-alerts.ndjson",
		"cryptominer/vm-miner01/flows.ndjson", "cryptominer/ops-01/azure-activity.json")
	f.Add(`{"records":[{"operationName":"a/write","resourceId":"/subscriptions/s/resourceGroups/g` +
		`/providers/p/t/n","properties":{"responseBody":"{\"location\":\"x\"}"}}]}`)
	f.Add(`{"Event":{"System":{"EventID":{"Value":"1"},"Provider":{"Name":"Sysmon"}}}}`)
	f.Add(`{"MESSAGE":[255,0,1],"__REALTIME_TIMESTAMP":"99999999999999999999"}`)
	f.Add(`[{"EventID":"0x10","Image":"a\\b"}, 1, "x"]`)

	f.Fuzz(func(t *testing.T, line string) {
		// Each built-in mapper on the decoded object.
		if obj, ok := decodeLine([]byte(line)); ok {
			for name, m := range builtins {
				rec, reason := m(obj, time.UTC)
				if reason == "" {
					fieldsValid(t, rec)
				} else if name == MapGeneric {
					t.Fatalf("generic mapper refused %q: %s", line, reason)
				}
			}
		}

		// The whole reader, as NDJSON and as a document: no panic, no
		// error, and nothing emitted outside the schema.
		for _, format := range []string{FormatNDJSON, FormatJSON, FormatSysmonXML} {
			env := collectors.NewEnv(Name, "/", "h", collectors.Budget{}, nil,
				func(r tasks.Record) error { fieldsValid(t, r); return nil })
			in := &ingest{ctx: context.Background(), env: env, p: &plan{loc: time.UTC},
				src: Source{Path: "fuzz"}}
			if err := in.dispatch(format, bufio.NewReader(strings.NewReader(line))); err != nil {
				t.Fatalf("%s: %v", format, err)
			}
		}
	})
}

func FuzzAuthLine(f *testing.F) {
	seedLines(f, "real/linux-logs/elastic-beats_system_auth_test.log",
		"real/linux-logs/elastic-beats_system_auth_timestamp.log",
		"real/linux-logs/otrf_auditd_sh_arp_cache.log")
	f.Add("<34>1 2003-10-11T22:14:15.003Z h sshd[1]: Invalid user  from  port x")
	f.Add("Feb 30 25:61:61 h sudo: : ; ; COMMAND=")
	f.Add("Jan  1 00:00:00 h sshd[]: Failed none for invalid user a from b port 99999999999999999999")

	mtime := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, line string) {
		sl, ok := parseSyslog(line, 0, mtime, time.UTC)
		if ok {
			rec := syslogRecord(sl)
			fieldsValid(t, rec)
			if rec.Kind == tasks.KindAuth && rec.Str("event") == "" {
				t.Fatalf("auth record without event from %q", line)
			}
		}
		for _, prog := range []string{"sshd", "sudo", "useradd", "pam"} {
			if f := parseAuth(prog, line); f != nil {
				fieldsValid(t, tasks.Record{Kind: tasks.KindAuth, Fields: f})
			}
		}
		// The auditd reader on the same bytes.
		env := collectors.NewEnv(Name, "/", "h", collectors.Budget{}, nil,
			func(r tasks.Record) error { fieldsValid(t, r); return nil })
		in := &ingest{ctx: context.Background(), env: env, p: &plan{loc: time.UTC},
			src: Source{Path: "fuzz"}}
		if err := in.dispatch(FormatAuditd, bufio.NewReader(strings.NewReader(line))); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzEVTXChunk(f *testing.F) {
	orig, err := os.ReadFile(filepath.Join(testdata,
		"real/sysmon/evtx-attack-samples_sysmon_10_1_memdump_comsvcs_minidump.evtx"))
	if err != nil {
		f.Fatal(err)
	}
	// Seeds are the records region of the real chunk, whole and in parts;
	// the fuzzer's bytes replace the chunk from offset 512 on.
	body := orig[evtxHeaderSize+evtxChunkHead : evtxHeaderSize+0x3200]
	f.Add(body)
	f.Add(body[:0xef0])
	chunkHead := orig[evtxHeaderSize : evtxHeaderSize+evtxChunkHead]

	f.Fuzz(func(t *testing.T, data []byte) {
		chunk := make([]byte, evtxChunkSize)
		copy(chunk, chunkHead)
		copy(chunk[evtxChunkHead:], data)
		env := collectors.NewEnv(Name, "/", "h", collectors.Budget{}, nil,
			func(r tasks.Record) error { fieldsValid(t, r); return nil })
		in := &ingest{ctx: context.Background(), env: env, p: &plan{loc: time.UTC},
			src: Source{Path: "fuzz"}}
		if err := in.evtxChunk(chunk, 0); err != nil {
			t.Fatal(err)
		}
	})
}

// authLines writes an n-line auth.log mixing sshd, sudo, PAM and cron.
func authLines(tb testing.TB, n int) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "auth.log")
	var b bytes.Buffer
	for i := range n {
		sec := i % 60
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, "Aug  5 08:%02d:%02d web-01 sshd[%d]: Accepted publickey for ops "+
				"from 10.20.%d.%d port %d ssh2: ED25519 SHA256:abc\n",
				i/60%60, sec, 1000+i%5000, i%250, i%200, 1024+i%60000)
		case 1:
			fmt.Fprintf(&b, "Aug  5 08:%02d:%02d web-01 sshd[%d]: Failed password for invalid "+
				"user admin%d from 203.0.113.%d port %d ssh2\n",
				i/60%60, sec, 1000+i%5000, i%50, i%250, 1024+i%60000)
		case 2:
			fmt.Fprintf(&b, "Aug  5 08:%02d:%02d web-01 sudo:      ops : TTY=pts/0 ; "+
				"PWD=/home/ops ; USER=root ; COMMAND=/bin/systemctl restart app%d\n",
				i/60%60, sec, i%10)
		case 3:
			fmt.Fprintf(&b, "Aug  5 08:%02d:%02d web-01 sshd[%d]: pam_unix(sshd:session): "+
				"session opened for user ops(uid=1000) by (uid=0)\n", i/60%60, sec, 1000+i%5000)
		default:
			fmt.Fprintf(&b, "Aug  5 08:%02d:%02d web-01 CRON[%d]: (root) CMD (run-parts "+
				"/etc/cron.hourly)\n", i/60%60, sec, 2000+i%5000)
		}
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// yardstick times a shell tool over path, best of three runs.
func yardstick(b *testing.B, name string, args ...string) time.Duration {
	b.Helper()
	best := time.Duration(1<<63 - 1)
	for range 3 {
		start := time.Now()
		if out, err := exec.Command(name, args...).Output(); err != nil {
			b.Fatalf("%s: %v %s", name, err, out)
		}
		best = min(best, time.Since(start))
	}
	return best
}

// BenchmarkAuthLogIngest measures ingest throughput of a 100,000-line
// auth.log in lines per second, and how many times slower it is than
// `wc -l` and `grep -c sshd` over the same file.
func BenchmarkAuthLogIngest(b *testing.B) {
	const lines = 100_000
	path := authLines(b, lines)
	raw := []byte(fmt.Sprintf(`{"sources":[{"path":%q,"format":"auth"}],"year":2024}`,
		filepath.Base(path)))
	root := filepath.Dir(path)
	c := New()

	iters := 0
	start := time.Now()
	for b.Loop() {
		n := 0
		env := collectors.NewEnv(Name, root, "h", collectors.Budget{}, nil,
			func(tasks.Record) error { n++; return nil })
		if err := c.Collect(context.Background(), env, raw); err != nil {
			b.Fatal(err)
		}
		if n != lines {
			b.Fatalf("%d records from %d lines: %v", n, lines, env.Stats.Summary().Skipped)
		}
		iters++
	}
	perRun := time.Since(start) / time.Duration(iters)

	wc := yardstick(b, "wc", "-l", path)
	grep := yardstick(b, "grep", "-c", "sshd", path)
	b.ReportMetric(float64(lines)/perRun.Seconds(), "lines/s")
	b.ReportMetric(float64(perRun)/float64(wc), "x_wc-l")
	b.ReportMetric(float64(perRun)/float64(grep), "x_grep-c")
}
