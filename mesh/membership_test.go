package mesh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// presenceOf returns a Presence func announcing s.
func presenceOf(s string) func(*Config) {
	return func(c *Config) { c.Presence = func() []byte { return []byte(s) } }
}

func TestPresenceView(t *testing.T) {
	b := newTestMesh(t, presenceOf("node-b"))
	viaB := func(name string) func(*Config) {
		return func(c *Config) {
			presenceOf(name)(c)
			c.StaticPeers = []string{b.Addrs()[0]}
		}
	}
	a := newTestMesh(t, viaB("node-a"))
	c := newTestMesh(t, viaB("node-c"))

	byID := func(m *Mesh) map[string]Peer {
		out := map[string]Peer{}
		for _, p := range m.Peers() {
			out[p.ID] = p
		}
		return out
	}
	waitFor(t, "A hears B and C", func() bool {
		v := byID(a)
		return string(v[b.ID()].Presence) == "node-b" && string(v[c.ID()].Presence) == "node-c"
	})
	view := byID(a)

	t.Run("self excluded", func(t *testing.T) {
		if _, ok := view[a.ID()]; ok {
			t.Fatal("view lists this node")
		}
	})
	t.Run("sorted by id", func(t *testing.T) {
		peers := a.Peers()
		if !slices.IsSortedFunc(peers, func(x, y Peer) int { return strings.Compare(x.ID, y.ID) }) {
			t.Fatal("peers not sorted by ID")
		}
	})
	t.Run("direct neighbour", func(t *testing.T) {
		p := view[b.ID()]
		if !p.Connected || len(p.Addrs) == 0 {
			t.Fatalf("B: connected=%v addrs=%v", p.Connected, p.Addrs)
		}
		if p.FirstSeen.IsZero() || p.LastSeen.Before(p.FirstSeen) {
			t.Fatalf("B: first %v last %v", p.FirstSeen, p.LastSeen)
		}
	})
	t.Run("peer known through gossip", func(t *testing.T) {
		p := view[c.ID()]
		if p.Connected {
			t.Fatal("C reported connected to A")
		}
		if len(p.Addrs) == 0 {
			t.Fatal("C's announced addresses were not kept")
		}
	})
	t.Run("last seen advances", func(t *testing.T) {
		first := view[b.ID()].LastSeen
		waitFor(t, "a newer announcement", func() bool {
			return byID(a)[b.ID()].LastSeen.After(first)
		})
	})
}

func TestDecodePresence(t *testing.T) {
	addr := "/ip4/127.0.0.1/tcp/4001"
	many := make([]string, maxPresenceAddrs+1)
	for i := range many {
		many[i] = addr
	}
	enc := func(p presenceMsg) []byte {
		raw, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	cases := []struct {
		name string
		raw  []byte
		ok   bool
	}{
		{"valid", enc(presenceMsg{Seq: 1, Addrs: []string{addr}, Data: []byte("x")}), true},
		{"not json", []byte("{"), false},
		{"bad address", enc(presenceMsg{Seq: 1, Addrs: []string{"nope"}}), false},
		{"too many addresses", enc(presenceMsg{Seq: 1, Addrs: many}), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodePresence(tc.raw)
			if tc.ok != (err == nil) {
				t.Fatalf("decodePresence err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func FuzzDecodePresence(f *testing.F) {
	f.Add([]byte(`{"seq":1,"addrs":["/ip4/127.0.0.1/tcp/1"],"data":"eA=="}`))
	f.Add([]byte(`{"addrs":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := decodePresence(raw)
		if err == nil && len(p.Addrs) > maxPresenceAddrs {
			t.Fatalf("%d addresses passed the cap", len(p.Addrs))
		}
	})
}

func TestPrivateNetwork(t *testing.T) {
	key := func() []byte {
		k := make([]byte, pskSize)
		if _, err := rand.Read(k); err != nil {
			t.Fatal(err)
		}
		return k
	}
	psk1, psk2 := key(), key()
	withPSK := func(k []byte) func(*Config) { return func(c *Config) { c.PSK = k } }
	a := newTestMesh(t, withPSK(psk1))
	member := newTestMesh(t, withPSK(psk1))
	outsider := newTestMesh(t, withPSK(psk2))
	open := newTestMesh(t, nil)

	t.Run("no quic in a private network", func(t *testing.T) {
		for _, addr := range a.Addrs() {
			if strings.Contains(addr, "quic") {
				t.Fatalf("private node listens on %s", addr)
			}
		}
	})
	t.Run("same key connects", func(t *testing.T) {
		connect(t, member, a)
	})
	cases := []struct {
		name string
		from *Mesh
	}{
		{"other key refused", outsider},
		{"no key refused", open},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if err := tc.from.Connect(ctx, a.Addrs()[0]); err == nil {
				t.Fatal("connected across private network boundary")
			}
			if a.connectedTo(tc.from.ID()) {
				t.Fatal("private node holds a connection to an outsider")
			}
		})
	}
}

func TestKnownPeersRedialledAfterRestart(t *testing.T) {
	b := newTestMesh(t, nil)
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.DataDir = dir
	a, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	connect(t, a, b)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	t.Run("file lists the peer", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(dir, knownPeersFile))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(raw, []byte(b.ID())) {
			t.Fatalf("peers.json does not name %s:\n%s", b.ID(), raw)
		}
	})
	t.Run("restart redials", func(t *testing.T) {
		a, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		waitFor(t, "reconnect to B", func() bool { return a.connectedTo(b.ID()) })
	})
}

func TestDecodeKnownPeers(t *testing.T) {
	id := "12D3KooWEDWJwoLbPiDUDuYpg4zq6s2xVhQU9XeMpPNeVnZ8grMF"
	addr := "/ip4/127.0.0.1/tcp/1"
	cases := []struct {
		name  string
		raw   string
		limit int
		want  int
		ok    bool
	}{
		{"one peer", `[{"id":"` + id + `","addrs":["` + addr + `"]}]`, 8, 1, true},
		{"bad id skipped", `[{"id":"x","addrs":["` + addr + `"]}]`, 8, 0, true},
		{"no usable address skipped", `[{"id":"` + id + `","addrs":["junk"]}]`, 8, 0, true},
		{"limit applies", `[{"id":"` + id + `","addrs":["` + addr + `"]},{"id":"` + id +
			`","addrs":["` + addr + `"]}]`, 1, 1, true},
		{"not json", `{`, 8, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeKnownPeers([]byte(tc.raw), tc.limit)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if len(got) != tc.want {
				t.Fatalf("%d peers, want %d", len(got), tc.want)
			}
		})
	}
}

func FuzzDecodeKnownPeers(f *testing.F) {
	f.Add([]byte(`[{"id":"12D3KooWEDWJwoLbPiDUDuYpg4zq6s2xVhQU9XeMpPNeVnZ8grMF",` +
		`"addrs":["/ip4/127.0.0.1/tcp/1"]}]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		infos, err := decodeKnownPeers(raw, 4)
		if err != nil {
			return
		}
		if len(infos) > 4 {
			t.Fatalf("%d peers over the limit", len(infos))
		}
		for _, in := range infos {
			if len(in.Addrs) > maxAddrsPerPeer || len(in.Addrs) == 0 {
				t.Fatalf("%d addresses kept", len(in.Addrs))
			}
		}
	})
}

func TestStaticPeerRedialled(t *testing.T) {
	b := newTestMesh(t, nil)
	a := newTestMesh(t, func(c *Config) { c.StaticPeers = []string{b.Addrs()[0]} })
	waitFor(t, "first connection, seen from both sides", func() bool {
		return a.connectedTo(b.ID()) && b.connectedTo(a.ID())
	})
	bid, err := peer.Decode(b.ID())
	if err != nil {
		t.Fatal(err)
	}
	old := map[string]bool{}
	for _, c := range a.host.Network().ConnsToPeer(bid) {
		old[c.ID()] = true
	}

	// Drop the connection from B's side; A must dial a new one by itself.
	aid, err := peer.Decode(a.ID())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.host.Network().ClosePeer(aid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new connection from A", func() bool {
		for _, c := range a.host.Network().ConnsToPeer(bid) {
			if !old[c.ID()] {
				return true
			}
		}
		return false
	})
}

func TestOnConnect(t *testing.T) {
	a := newTestMesh(t, nil)
	b := newTestMesh(t, nil)
	got := make(chan string, 4)
	a.OnConnect(func(p string) { got <- p })
	connect(t, b, a)
	select {
	case p := <-got:
		if p != b.ID() {
			t.Fatalf("hook got %s, want %s", p, b.ID())
		}
	case <-time.After(waitTimeout):
		t.Fatal("OnConnect hook not called")
	}
}

func TestRateLimit(t *testing.T) {
	const topic = "/test/flood/1"
	a := newTestMesh(t, nil)
	b := newTestMesh(t, func(c *Config) { c.TopicRate, c.TopicBurst = 1, 3 })
	connect(t, a, b)
	var inA, inB inbox
	if err := a.Join(topic, acceptAll, inA.handle); err != nil {
		t.Fatal(err)
	}
	if err := b.Join(topic, acceptAll, inB.handle); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "topic peers", func() bool {
		return a.TopicPeers(topic) == 1 && b.TopicPeers(topic) == 1
	})

	const sent = 20
	for i := range sent {
		if err := a.Publish(context.Background(), topic, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	key := "drop/" + topic + "/rate-limit"
	waitFor(t, "every message accounted for at B", func() bool {
		inB.mu.Lock()
		got := len(inB.msgs)
		inB.mu.Unlock()
		return uint64(got)+b.Counters()[key] == sent
	})
	if b.Counters()[key] == 0 {
		t.Fatal("no message was rate-limited")
	}
	t.Run("own publications not limited", func(t *testing.T) {
		inA.mu.Lock()
		defer inA.mu.Unlock()
		if len(inA.msgs) != sent {
			t.Fatalf("A delivered %d of its own %d messages", len(inA.msgs), sent)
		}
	})
}

func TestLimiter(t *testing.T) {
	l := newLimiter(1, 2)
	p := peer.ID("p1")
	t.Run("burst then refuse", func(t *testing.T) {
		got := []bool{l.allow("t", p), l.allow("t", p), l.allow("t", p)}
		if !slices.Equal(got, []bool{true, true, false}) {
			t.Fatalf("allow sequence %v", got)
		}
	})
	t.Run("topics are separate", func(t *testing.T) {
		if !l.allow("other", p) {
			t.Fatal("a fresh topic was limited")
		}
	})
	t.Run("memory bounded", func(t *testing.T) {
		for i := range 3 * maxBuckets {
			l.allow("t", peer.ID(string(rune(i))+"x"))
		}
		l.mu.Lock()
		n := len(l.buckets)
		l.mu.Unlock()
		if n > maxBuckets {
			t.Fatalf("%d buckets kept, cap %d", n, maxBuckets)
		}
	})
}

func TestViewBounded(t *testing.T) {
	m := newTestMesh(t, nil)
	raw, err := json.Marshal(presenceMsg{Seq: 1})
	if err != nil {
		t.Fatal(err)
	}
	var first string
	for i := range maxViewPeers + 10 {
		key := make([]byte, 32)
		key[0], key[1] = byte(i), byte(i>>8)
		id, err := PeerIDOf(ed25519PublicFromSeed(key))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = id
		}
		m.handlePresence(id, raw)
	}
	m.mu.Lock()
	n := len(m.view)
	m.mu.Unlock()
	if n != maxViewPeers {
		t.Fatalf("view holds %d peers, cap %d", n, maxViewPeers)
	}
	pid, err := peer.Decode(first)
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	_, kept := m.view[pid]
	m.mu.Unlock()
	if kept {
		t.Fatal("the longest-silent peer was not evicted")
	}
}

// ed25519PublicFromSeed derives a public key from a 32-byte seed.
func ed25519PublicFromSeed(seed []byte) ed25519.PublicKey {
	return ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
}
