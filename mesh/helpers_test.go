package mesh

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitTimeout is how long tests poll for a condition; generous for a loaded
// 2-core CI machine.
const waitTimeout = 10 * time.Second

// newTestMesh starts a mesh on loopback with a fresh data dir and closes it
// when the test ends. edit may change the config first.
func newTestMesh(t *testing.T, edit func(*Config)) *Mesh {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.PresenceInterval = 300 * time.Millisecond
	cfg.Logger = testLogger()
	if edit != nil {
		edit(&cfg)
	}
	m, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("new mesh: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// testLogger writes warnings to stderr when HUNTMESH_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("HUNTMESH_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// connect dials b from a and waits for the connection.
func connect(t *testing.T, a, b *Mesh) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := a.Connect(ctx, b.Addrs()[0]); err != nil {
		t.Fatalf("connect %s to %s: %v", a.ID(), b.ID(), err)
	}
}

// inbox collects messages delivered to a topic handler.
type inbox struct {
	mu   sync.Mutex
	msgs []delivered
}

// delivered is one handler call.
type delivered struct{ from, data string }

func (b *inbox) handle(from string, data []byte) {
	b.mu.Lock()
	b.msgs = append(b.msgs, delivered{from, string(data)})
	b.mu.Unlock()
}

// count returns how many times data was delivered.
func (b *inbox) count(data string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, m := range b.msgs {
		if m.data == data {
			n++
		}
	}
	return n
}

// from returns the originator of the first delivery of data.
func (b *inbox) from(data string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.msgs {
		if m.data == data {
			return m.from
		}
	}
	return ""
}

// acceptAll is a validator that accepts every message.
func acceptAll(string, []byte) error { return nil }

// meshGoroutines returns the stacks of goroutines running mesh code.
func meshGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "huntmesh/mesh.(*Mesh)") {
			out = append(out, g)
		}
	}
	return out
}
