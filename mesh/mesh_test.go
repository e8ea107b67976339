package mesh

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
)

func TestIdentityPersistsAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	start := func() *Mesh {
		cfg := DefaultConfig()
		cfg.DataDir = dir
		m, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatalf("new mesh: %v", err)
		}
		return m
	}

	m := start()
	first := m.ID()
	pub := m.SigningKey().Public().(ed25519.PublicKey)
	if err := m.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	m = start()
	defer m.Close()

	t.Run("same peer id", func(t *testing.T) {
		if m.ID() != first {
			t.Fatalf("peer id changed across restart: %s then %s", first, m.ID())
		}
	})
	t.Run("key file private", func(t *testing.T) {
		info, err := os.Stat(filepath.Join(dir, identityFile))
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Fatalf("identity.key mode %o, want 600", perm)
		}
	})
	t.Run("signing key matches id", func(t *testing.T) {
		key := m.SigningKey().Public().(ed25519.PublicKey)
		if !key.Equal(pub) {
			t.Fatal("signing key changed across restart")
		}
		id, err := PeerIDOf(key)
		if err != nil {
			t.Fatal(err)
		}
		if id != m.ID() {
			t.Fatalf("PeerIDOf(signing key) = %s, want %s", id, m.ID())
		}
		back, err := PublicKeyOf(id)
		if err != nil {
			t.Fatal(err)
		}
		if !back.Equal(key) {
			t.Fatal("PublicKeyOf does not invert PeerIDOf")
		}
	})
	t.Run("peer id of bad key", func(t *testing.T) {
		if _, err := PeerIDOf([]byte("short")); err == nil {
			t.Fatal("PeerIDOf accepted a 5-byte key")
		}
	})
	t.Run("corrupt key file refused", func(t *testing.T) {
		bad := t.TempDir()
		if err := os.WriteFile(filepath.Join(bad, identityFile), []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := DefaultConfig()
		cfg.DataDir = bad
		if m, err := New(context.Background(), cfg); err == nil {
			m.Close()
			t.Fatal("New accepted a corrupt identity file")
		}
	})
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"no listen address", func(c *Config) { c.ListenAddrs = nil }, "ListenAddrs"},
		{"bad listen address", func(c *Config) { c.ListenAddrs = []string{"tcp:1"} }, "ListenAddrs"},
		{"static peer without id", func(c *Config) {
			c.StaticPeers = []string{"/ip4/127.0.0.1/tcp/1"}
		}, "StaticPeers"},
		{"short psk", func(c *Config) { c.PSK = []byte("short") }, "PSK"},
		{"zero message size", func(c *Config) { c.MaxMessageSize = 0 }, "MaxMessageSize"},
		{"message size over gossipsub cap", func(c *Config) { c.MaxMessageSize = 1 << 20 },
			"MaxMessageSize"},
		{"zero stream size", func(c *Config) { c.MaxStreamSize = 0 }, "MaxStreamSize"},
		{"zero stream timeout", func(c *Config) { c.StreamTimeout = 0 }, "StreamTimeout"},
		{"tiny presence interval", func(c *Config) { c.PresenceInterval = time.Millisecond },
			"PresenceInterval"},
		{"zero topic rate", func(c *Config) { c.TopicRate = 0 }, "TopicRate"},
		{"zero topic burst", func(c *Config) { c.TopicBurst = 0 }, "TopicBurst"},
		{"negative known peers", func(c *Config) { c.MaxKnownPeers = -1 }, "MaxKnownPeers"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.edit(&cfg)
			err := cfg.validate()
			if err == nil || !strings.Contains(err.Error(), tc.field+":") {
				t.Fatalf("validate() = %v, want an error naming %s", err, tc.field)
			}
		})
	}
	t.Run("default is valid", func(t *testing.T) {
		cfg := DefaultConfig()
		if err := cfg.validate(); err != nil {
			t.Fatal(err)
		}
	})
}

// line starts three meshes wired A-B-C through static peers.
func line(t *testing.T, edit func(*Config)) (a, b, c *Mesh) {
	t.Helper()
	b = newTestMesh(t, edit)
	peerB := func(cfg *Config) {
		if edit != nil {
			edit(cfg)
		}
		cfg.StaticPeers = []string{b.Addrs()[0]}
	}
	a = newTestMesh(t, peerB)
	c = newTestMesh(t, peerB)
	waitFor(t, "A and C connected to B", func() bool {
		return a.connectedTo(b.ID()) && c.connectedTo(b.ID())
	})
	return a, b, c
}

func TestGossipThroughLine(t *testing.T) {
	a, b, c := line(t, nil)
	const topic = "/test/line/1"

	// B refuses anything starting with "bad" and ignores "skip".
	strict := func(_ string, data []byte) error {
		switch {
		case strings.HasPrefix(string(data), "bad"):
			return errors.New("bad payload")
		case strings.HasPrefix(string(data), "skip"):
			return ErrIgnore
		}
		return nil
	}
	var inA, inB, inC inbox
	for _, j := range []struct {
		m        *Mesh
		validate func(string, []byte) error
		box      *inbox
	}{{a, acceptAll, &inA}, {b, strict, &inB}, {c, acceptAll, &inC}} {
		if err := j.m.Join(topic, j.validate, j.box.handle); err != nil {
			t.Fatalf("join: %v", err)
		}
	}
	// B forwards only to its mesh, which forms at a heartbeat after joining.
	waitFor(t, "gossip mesh", func() bool {
		return a.MeshPeers(topic) == 1 && b.MeshPeers(topic) == 2 && c.MeshPeers(topic) == 1
	})
	ctx := context.Background()

	t.Run("message reaches C through B", func(t *testing.T) {
		if err := a.Publish(ctx, topic, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "B receives hello", func() bool { return inB.count("hello") == 1 })
		waitFor(t, "C receives hello", func() bool { return inC.count("hello") == 1 })
		if got := inC.from("hello"); got != a.ID() {
			t.Fatalf("from = %s, want originator %s", got, a.ID())
		}
		if a.connectedTo(c.ID()) {
			t.Fatal("A and C are directly connected; the test no longer proves relaying")
		}
	})
	t.Run("own publication delivered once", func(t *testing.T) {
		waitFor(t, "A receives hello", func() bool { return inA.count("hello") >= 1 })
		if n := inA.count("hello"); n != 1 {
			t.Fatalf("A got its own message %d times", n)
		}
	})
	t.Run("rejected message stops at B", func(t *testing.T) {
		if err := a.Publish(ctx, topic, []byte("bad one")); err != nil {
			t.Fatal(err)
		}
		if err := a.Publish(ctx, topic, []byte("after bad")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "C receives the next message", func() bool {
			return inC.count("after bad") == 1
		})
		waitFor(t, "B counts the rejection", func() bool {
			return b.Counters()["drop/"+topic+"/rejected"] == 1
		})
		if inB.count("bad one") != 0 || inC.count("bad one") != 0 {
			t.Fatal("rejected message was delivered")
		}
	})
	t.Run("ignored message stops at B", func(t *testing.T) {
		if err := a.Publish(ctx, topic, []byte("skip me")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "B counts the ignore", func() bool {
			return b.Counters()["drop/"+topic+"/ignored"] == 1
		})
		if inC.count("skip me") != 0 {
			t.Fatal("ignored message was forwarded")
		}
	})
	t.Run("handler panic contained", func(t *testing.T) {
		const other = "/test/panic/1"
		if err := a.Join(other, acceptAll, func(_ string, data []byte) {
			if string(data) == "boom" {
				panic("handler bug")
			}
			inA.handle("", data)
		}); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{"boom", "fine"} {
			if err := a.Publish(ctx, other, []byte(d)); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "delivery after a panic", func() bool { return inA.count("fine") == 1 })
		if n := a.Counters()["handler-panic/"+other]; n != 1 {
			t.Fatalf("handler-panic counter = %d, want 1", n)
		}
	})
	t.Run("publish before join", func(t *testing.T) {
		err := a.Publish(ctx, "/test/other/1", []byte("x"))
		if !errors.Is(err, ErrNotJoined) {
			t.Fatalf("err = %v, want ErrNotJoined", err)
		}
	})
	t.Run("join twice", func(t *testing.T) {
		if err := a.Join(topic, acceptAll, inA.handle); err == nil {
			t.Fatal("second Join of the same topic succeeded")
		}
	})
}

func TestMessageSizeCap(t *testing.T) {
	const topic = "/test/size/1"
	big := newTestMesh(t, func(c *Config) { c.MaxMessageSize = 128 << 10 })
	small := newTestMesh(t, nil)
	connect(t, big, small)
	var inBig, inSmall inbox
	if err := big.Join(topic, acceptAll, inBig.handle); err != nil {
		t.Fatal(err)
	}
	if err := small.Join(topic, acceptAll, inSmall.handle); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "topic peers", func() bool {
		return big.TopicPeers(topic) == 1 && small.TopicPeers(topic) == 1
	})
	ctx := context.Background()
	limit := DefaultConfig().MaxMessageSize

	t.Run("oversize publish refused before sending", func(t *testing.T) {
		err := small.Publish(ctx, topic, make([]byte, limit+1))
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
		got := small.Counters()
		if got["publish/"+topic] != 0 || got["refused/"+topic+"/too-large"] != 1 {
			t.Fatalf("counters after a refused publish: %v", got)
		}
	})
	t.Run("message at the cap accepted", func(t *testing.T) {
		data := strings.Repeat("e", limit)
		if err := small.Publish(ctx, topic, []byte(data)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "delivery at the cap", func() bool { return inBig.count(data) == 1 })
	})
	t.Run("oversize message from a peer dropped by validator", func(t *testing.T) {
		data := strings.Repeat("o", limit+1)
		if err := big.Publish(ctx, topic, []byte(data)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "validator drop", func() bool {
			return small.Counters()["drop/"+topic+"/too-large"] >= 1
		})
		if inSmall.count(data) != 0 {
			t.Fatal("oversize message delivered")
		}
	})
}

func TestCloseIsIdempotentAndLeaksNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := func(c *Config) { c.DataDir = t.TempDir() }
	start := func() *Mesh {
		c := DefaultConfig()
		cfg(&c)
		c.PresenceInterval = 200 * time.Millisecond
		m, err := New(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a, b := start(), start()
	connect(t, a, b)
	hooked := make(chan string, 4)
	b.OnConnect(func(p string) { hooked <- p })
	for _, m := range []*Mesh{a, b} {
		m.Handle("/test/echo/1", func(_ context.Context, _ string, req []byte) ([]byte, error) {
			return req, nil
		})
		if err := m.Join("/test/leak/1", acceptAll, func(string, []byte) {}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Call(context.Background(), b.ID(), "/test/echo/1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "presence exchanged", func() bool {
		peers := b.Peers()
		return len(peers) == 1 && !peers[0].LastSeen.IsZero()
	})

	for _, m := range []*Mesh{a, b} {
		if err := m.Close(); err != nil {
			t.Fatalf("first close: %v", err)
		}
		if err := m.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
	}
	if got := meshGoroutines(); len(got) != 0 {
		t.Fatalf("%d mesh goroutines left after Close:\n%s", len(got), strings.Join(got, "\n\n"))
	}
	// libp2p winds down some goroutines of its own asynchronously; allow a
	// little slack for runtime helpers but not a leaked host.
	waitFor(t, "goroutines to wind down", func() bool {
		return runtime.NumGoroutine() <= before+5
	})
	t.Run("use after close", func(t *testing.T) {
		err := a.Publish(context.Background(), "/test/leak/1", []byte("x"))
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("publish after close: %v, want ErrClosed", err)
		}
		_, err = a.Call(context.Background(), b.ID(), "/test/echo/1", nil)
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("call after close: %v, want ErrClosed", err)
		}
	})
}

func TestNewWithHost(t *testing.T) {
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(key),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewWithHost(context.Background(), DefaultConfig(), h)
	if err != nil {
		h.Close()
		t.Fatal(err)
	}
	defer m.Close()
	other := newTestMesh(t, nil)
	connect(t, other, m)
	m.Handle(echoProto, echo(1<<10))

	t.Run("identity is the host's", func(t *testing.T) {
		if m.ID() != h.ID().String() {
			t.Fatalf("mesh id %s, host id %s", m.ID(), h.ID())
		}
	})
	t.Run("serves calls", func(t *testing.T) {
		resp, err := other.Call(context.Background(), m.ID(), echoProto, []byte("hi"))
		if err != nil || string(resp) != other.ID()+":hi" {
			t.Fatalf("call: %q, %v", resp, err)
		}
	})
	t.Run("nil host refused", func(t *testing.T) {
		if _, err := NewWithHost(context.Background(), DefaultConfig(), nil); err == nil {
			t.Fatal("nil host accepted")
		}
	})
}
