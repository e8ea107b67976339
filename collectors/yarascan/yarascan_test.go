package yarascan

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const scenario = "../../testdata/cryptominer"

func compileFile(t *testing.T, paths ...string) *Rules {
	t.Helper()
	var srcs []Source
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, Source{Name: filepath.Base(p), Text: string(b)})
	}
	r, err := Compile(srcs)
	if err != nil {
		t.Fatalf("compile %v: %v", paths, err)
	}
	t.Cleanup(r.Destroy)
	return r
}

func TestScanFileScenario(t *testing.T) {
	r := compileFile(t, scenario+"/intel/miner.yar")
	if got := r.RuleNames(); !slices.Equal(got,
		[]string{"coinminer_cpu_binary", "coinminer_stratum_config"}) {
		t.Fatalf("RuleNames = %v", got)
	}
	tests := []struct {
		name string
		path string
		want []string
	}{
		{"miner binary", "vm-miner01/root/usr/local/bin/miner",
			[]string{"coinminer_cpu_binary", "coinminer_stratum_config"}},
		{"miner config", "vm-miner01/root/etc/miner.conf",
			[]string{"coinminer_stratum_config"}},
		{"hidden binary", "vm-miner02/root/opt/.cache/kworkerd",
			[]string{"coinminer_cpu_binary", "coinminer_stratum_config"}},
		{"hidden config", "vm-miner02/root/opt/.cache/config.json",
			[]string{"coinminer_stratum_config"}},
		{"rc.local", "vm-miner01/root/etc/rc.local", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := r.ScanFile(filepath.Join(scenario, tt.path), nil, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got := Names(ms); !slices.Equal(got, tt.want) {
				t.Fatalf("matches = %v, want %v", got, tt.want)
			}
			for _, m := range ms {
				if m.Namespace != "miner.yar" || m.Meta["severity"] != "high" {
					t.Errorf("match %+v lacks namespace or meta", m)
				}
			}
		})
	}
}

func TestCompileRealRules(t *testing.T) {
	paths, err := filepath.Glob("../../testdata/real/yara/*.yar")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no real rules: %v", err)
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			r := compileFile(t, p)
			if r.Count() == 0 {
				t.Fatal("no rules compiled")
			}
		})
	}
	t.Run("all together", func(t *testing.T) {
		r := compileFile(t, paths...)
		if r.Count() < len(paths) {
			t.Fatalf("count %d", r.Count())
		}
	})
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name    string
		srcs    []Source
		line    int
		wantMsg string
		wantErr error
	}{
		{
			name: "syntax error on line 3",
			srcs: []Source{{Name: "bad.yar",
				Text: "rule ok { condition: true }\n\nrule broken { condition: }\n"}},
			line: 3, wantMsg: "syntax error",
		},
		{
			name: "undefined identifier names second source",
			srcs: []Source{
				{Name: "good.yar", Text: "rule a { condition: true }"},
				{Name: "worse.yar", Text: "rule b {\n condition: nosuchvar\n}"},
			},
			line: 2, wantMsg: "nosuchvar",
		},
		{name: "empty", srcs: nil, wantErr: ErrNoRules},
		{
			name:    "too large",
			srcs:    []Source{{Name: "big", Text: strings.Repeat(" ", MaxSourceBytes+1)}},
			wantErr: ErrSourceTooLarge,
		},
		{
			name: "include refused",
			srcs: []Source{{Name: "inc.yar", Text: "include \"/etc/passwd\"\n"}},
			line: 1, wantMsg: "include",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.srcs)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *CompileError", err)
			}
			if ce.Source != tt.srcs[len(tt.srcs)-1].Name || ce.Line != tt.line ||
				!strings.Contains(ce.Message, tt.wantMsg) {
				t.Fatalf("got %+v, want line %d and %q", ce, tt.line, tt.wantMsg)
			}
		})
	}
}

func TestScanFileRefusesNonRegular(t *testing.T) {
	r, err := Compile([]Source{{Name: "t", Text: "rule anything { condition: true }"}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Destroy()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		want error
	}{
		{"fifo", fifo, ErrNotRegular},
		{"symlink", link, ErrNotRegular},
		{"directory", dir, ErrNotRegular},
		{"missing", filepath.Join(dir, "gone"), os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := r.ScanFile(tt.path, nil, time.Second)
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, tt.want) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("scan blocked")
			}
		})
	}
	t.Run("regular and empty", func(t *testing.T) {
		empty := filepath.Join(dir, "empty")
		if err := os.WriteFile(empty, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{target, empty} {
			ms, err := r.ScanFile(p, nil, time.Second)
			if err != nil || len(ms) != 1 {
				t.Fatalf("scan %s: %v %v", p, ms, err)
			}
		}
	})
}

func TestExternalVarsPerScan(t *testing.T) {
	r, err := Compile([]Source{{Name: "v", Text: `rule is_sh {
		condition: extension == ".sh" and filename matches /^run/ }`}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Destroy()

	// Scans run concurrently with different variables; none may see
	// another's values.
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vars := map[string]string{"extension": ".txt", "filename": "note"}
			want := 0
			if i%2 == 0 {
				vars = map[string]string{"extension": ".sh", "filename": "run.sh"}
				want = 1
			}
			ms, err := r.ScanBytes([]byte("data"), vars, time.Second)
			if err != nil || len(ms) != want {
				errs <- "wrong result"
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

type sliceBlocks struct {
	blocks [][]byte
	i      int
}

func (s *sliceBlocks) First() (Block, bool) { s.i = 0; return s.Next() }

func (s *sliceBlocks) Next() (Block, bool) {
	if s.i >= len(s.blocks) {
		return Block{}, false
	}
	b := s.blocks[s.i]
	s.i++
	return Block{Base: uint64(s.i) << 20, Size: uint64(len(b)),
		Fetch: func(buf []byte) { copy(buf, b) }}, true
}

func TestScanMemBlocks(t *testing.T) {
	r, err := Compile([]Source{{Name: "m", Text: `rule both {
		strings: $a = "alpha-marker" $b = "bravo-marker"
		condition: $a and $b }`}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Destroy()
	tests := []struct {
		name   string
		blocks [][]byte
		want   int
	}{
		{"split over blocks", [][]byte{[]byte("xx alpha-marker"), []byte("bravo-marker yy")}, 1},
		{"one missing", [][]byte{[]byte("alpha-marker"), []byte("nothing")}, 0},
		{"no blocks", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := r.ScanMem(&sliceBlocks{blocks: tt.blocks}, nil, time.Second)
			if err != nil || len(ms) != tt.want {
				t.Fatalf("got %v, %v; want %d matches", ms, err, tt.want)
			}
		})
	}
}

func TestScanProc(t *testing.T) {
	marker := "huntmesh-proc-marker-7d41c2"
	r, err := Compile([]Source{{Name: "p", Text: `rule marker {
		strings: $m = "` + marker + `" condition: $m }`}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Destroy()

	// The marker sits in the child's argv, on its stack.
	cmd := exec.Command("/bin/sh", "-c", "sleep 30; : "+marker)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	time.Sleep(100 * time.Millisecond)

	ms, err := r.ScanProc(cmd.Process.Pid, nil, 10*time.Second)
	if err != nil {
		t.Skipf("cannot attach to process (ptrace not permitted?): %v", err)
	}
	if got := Names(ms); !slices.Equal(got, []string{"marker"}) {
		t.Fatalf("matches = %v", got)
	}
}

func TestDestroy(t *testing.T) {
	r, err := Compile([]Source{{Name: "d", Text: "rule t { condition: true }"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ScanBytes([]byte("x"), nil, 0); err != nil {
		t.Fatal(err)
	}
	r.Destroy()
	r.Destroy()
	if _, err := r.ScanBytes([]byte("x"), nil, 0); !errors.Is(err, ErrDestroyed) {
		t.Fatalf("err = %v, want ErrDestroyed", err)
	}
}

func TestTimeout(t *testing.T) {
	// A loop over every byte of a large buffer runs long enough to trip a
	// one-second timeout.
	r, err := Compile([]Source{{Name: "slow", Text: `rule slow {
		strings: $a = /a.{0,64}b.{0,64}c/
		condition: $a or for all i in (0..filesize) : (for all j in (0..filesize) : (true)) }`}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Destroy()
	_, err = r.ScanBytes([]byte(strings.Repeat("a", 1<<16)), nil, time.Second)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
}
