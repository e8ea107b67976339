package memory

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/tasks"
)

// marker is what the child process builds in its heap. The child's source
// holds it rot13-encoded, so the clear text is never in the binary.
const marker = "stratum+tcp://pool.invalid:3333 donate-level HUNTMESH-TEST-MARKER"

// childName is the child's executable name, and so its process name.
const childName = "huntchild"

const childSource = `package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

var keep [][]byte

func rot13(s string) []byte {
	out := []byte(s)
	for i, c := range out {
		switch {
		case c >= 'a' && c <= 'z':
			out[i] = 'a' + (c-'a'+13)%26
		case c >= 'A' && c <= 'Z':
			out[i] = 'A' + (c-'A'+13)%26
		}
	}
	return out
}

func main() {
	keep = append(keep, rot13("fgenghz+gpc://cbby.vainyvq:3333 qbangr-yriry UHAGZRFU-GRFG-ZNEXRE"))
	if len(os.Args) > 1 {
		mib, _ := strconv.Atoi(os.Args[1])
		for range mib {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(j) | 1
			}
			keep = append(keep, b)
		}
	}
	fmt.Println("ready")
	for {
		time.Sleep(time.Hour)
		runtime.KeepAlive(keep)
	}
}
`

var (
	buildOnce sync.Once
	childBin  string
	buildErr  error
)

// buildChild compiles the child program once per test binary.
func buildChild(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "memory-child-")
		if err != nil {
			buildErr = err
			return
		}
		files := map[string]string{"main.go": childSource, "go.mod": "module child\n\ngo 1.22\n"}
		for name, text := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
				buildErr = err
				return
			}
		}
		childBin = filepath.Join(dir, childName)
		cmd := exec.Command("go", "build", "-o", childBin, ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "CGO_ENABLED=0", "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build child: %w: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return childBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if childBin != "" {
		os.RemoveAll(filepath.Dir(childBin))
	}
	os.Exit(code)
}

// child is a started child process.
type child struct {
	cmd  *exec.Cmd
	pid  int
	once sync.Once
}

// kill ends the child and reaps it, so its /proc entry is gone.
func (c *child) kill() {
	c.once.Do(func() {
		c.cmd.Process.Kill()
		c.cmd.Wait()
	})
}

// startChild runs the child with ballastMiB MiB of extra heap, waits until
// the marker is built, and skips the test if its memory cannot be read.
func startChild(t testing.TB, ballastMiB int) *child {
	t.Helper()
	bin := buildChild(t)
	cmd := exec.Command(bin, fmt.Sprint(ballastMiB))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	c := &child{cmd: cmd, pid: cmd.Process.Pid}
	t.Cleanup(c.kill)

	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("child said %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("wait for child: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("child did not get ready")
	}
	requireMemAccess(t, c.pid)
	return c
}

// requireMemAccess skips the test when this process may not read the
// child's memory (ptrace restrictions, no root).
func requireMemAccess(t testing.TB, pid int) {
	t.Helper()
	p, err := openProc(DefaultProcRoot, pid)
	if err != nil {
		t.Fatalf("open child: %v", err)
	}
	regs, err := p.regions()
	if err != nil {
		t.Skipf("cannot read /proc/%d/maps (ptrace restrictions?): %v", pid, err)
	}
	mem, err := p.openMem()
	if err != nil {
		t.Skipf("cannot open /proc/%d/mem (ptrace restrictions?): %v", pid, err)
	}
	defer mem.Close()
	for _, r := range regs {
		if r.skipReason(true) == "" {
			buf := make([]byte, 16)
			if _, err := mem.ReadAt(buf, int64(r.Start)); err != nil {
				t.Skipf("cannot read /proc/%d/mem (ptrace restrictions?): %v", pid, err)
			}
			return
		}
	}
	t.Skipf("child %d has no readable region", pid)
}

// memBlobs is an in-memory collectors.BlobSink. afterFirst, if set, runs
// once after the first bytes arrive.
type memBlobs struct {
	mu         sync.Mutex
	blobs      map[string][]byte
	afterFirst func()
}

func (s *memBlobs) PutBlob(r io.Reader) (string, int64, error) {
	var buf bytes.Buffer
	if s.afterFirst != nil {
		first := make([]byte, 4096)
		n, err := io.ReadFull(r, first)
		buf.Write(first[:n])
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return "", 0, err
		}
		s.afterFirst()
	}
	if _, err := io.Copy(&buf, r); err != nil {
		return "", 0, err
	}
	sum := sha256.Sum256(buf.Bytes())
	key := hex.EncodeToString(sum[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blobs == nil {
		s.blobs = map[string][]byte{}
	}
	s.blobs[key] = buf.Bytes()
	return key, int64(buf.Len()), nil
}

func (s *memBlobs) get(key string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.blobs[key]
}

// run runs collector c with params and returns what it emitted.
func run(t *testing.T, c collectors.Collector, budget collectors.Budget, blobs collectors.BlobSink,
	params string) ([]tasks.Record, collectors.Summary, error) {
	t.Helper()
	var recs []tasks.Record
	env := collectors.NewEnv(c.Name(), "/", "test-host", budget, nil, func(r tasks.Record) error {
		recs = append(recs, r)
		return nil
	})
	env.Blobs = blobs
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := collectors.Run(ctx, c, env, []byte(params))
	return recs, env.Stats.Summary(), err
}

// timeAfter is time.After in milliseconds.
func timeAfter(ms int) <-chan time.Time { return time.After(time.Duration(ms) * time.Millisecond) }
