package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/tasks"
)

// minerBin is the stand-in miner built once by TestMain.
var minerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "host-miner-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		os.Exit(1)
	}
	minerBin, err = buildMiner(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "build miner:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildMiner compiles testdata/miner.go.txt into dir/miner.
func buildMiner(dir string) (string, error) {
	src, err := os.ReadFile(filepath.Join("testdata", "miner.go.txt"))
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), src, 0o644); err != nil {
		return "", err
	}
	mod := "module example.com/miner\n\ngo 1.22\n"
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644); err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "miner")
	cmd := exec.Command(goBin, "build", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%w: %s", err, b)
	}
	return out, nil
}

// fileSHA256 hashes a file for comparison with collector output.
func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// copyFile copies src to dst with mode 0755.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// pool is a TCP listener standing in for a mining pool.
type pool struct {
	ln   net.Listener
	port int
}

// newPool listens on a random loopback port until the test ends.
func newPool(t *testing.T) *pool {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &pool{ln: ln, port: ln.Addr().(*net.TCPAddr).Port}
}

// startMiner starts bin with a miner-like command line against p, waits
// until the pool accepted its connection, and stops it when the test ends.
func startMiner(t *testing.T, bin string, p *pool) *exec.Cmd {
	t.Helper()
	url := "stratum+tcp://127.0.0.1:" + strconv.Itoa(p.port)
	cmd := exec.Command(bin, "--url", url, "--donate-level", "1")
	cmd.Dir = filepath.Dir(bin)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})

	// The pool holds the accepted side open until the test ends.
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := p.ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	select {
	case c := <-accepted:
		t.Cleanup(func() { c.Close() })
	case <-time.After(10 * time.Second):
		t.Fatal("miner did not connect")
	}
	return cmd
}

// run runs collector c with params under root and returns its records and
// stats.
func run(t *testing.T, c collectors.Collector, root string, budget collectors.Budget,
	params string) ([]tasks.Record, collectors.Summary) {
	t.Helper()
	recs, sum, err := runErr(c, root, budget, params, nil)
	if err != nil {
		t.Fatalf("collect %s: %v", c.Name(), err)
	}
	return recs, sum
}

// runErr is run without failing, with an optional hook seeing each record.
func runErr(c collectors.Collector, root string, budget collectors.Budget, params string,
	hook func(tasks.Record)) ([]tasks.Record, collectors.Summary, error) {
	var mu sync.Mutex
	var recs []tasks.Record
	env := collectors.NewEnv(c.Name(), root, "test-host", budget, nil, func(r tasks.Record) error {
		if hook != nil {
			hook(r)
		}
		mu.Lock()
		defer mu.Unlock()
		recs = append(recs, r)
		return nil
	})
	var raw json.RawMessage
	if params != "" {
		raw = json.RawMessage(params)
	}
	if err := c.Validate(raw); err != nil {
		return nil, env.Stats.Summary(), err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := collectors.Run(ctx, c, env, raw)
	return recs, env.Stats.Summary(), err
}

// byInt finds the first record whose integer field name equals v.
func byInt(recs []tasks.Record, name string, v int64) (tasks.Record, bool) {
	for _, r := range recs {
		if n, ok := r.Int(name); ok && n == v {
			return r, true
		}
	}
	return tasks.Record{}, false
}
