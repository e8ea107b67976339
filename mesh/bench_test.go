package mesh

import (
	"context"
	"testing"
	"time"
)

// benchPair starts two connected meshes with an echo handler on b.
// The rate limit is lifted: benchmarks flood on purpose.
func benchPair(b *testing.B) (x, y *Mesh) {
	b.Helper()
	start := func() *Mesh {
		cfg := DefaultConfig()
		cfg.DataDir = b.TempDir()
		cfg.TopicRate, cfg.TopicBurst = 1e9, 1<<30
		m, err := New(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { m.Close() })
		return m
	}
	x, y = start(), start()
	if err := x.Connect(context.Background(), y.Addrs()[0]); err != nil {
		b.Fatal(err)
	}
	y.Handle(echoProto, echo(1<<20))
	x.Handle(echoProto, echo(1<<20))
	return x, y
}

func BenchmarkCall(b *testing.B) {
	x, y := benchPair(b)
	req := make([]byte, 1<<10)
	cases := []struct {
		name string
		to   *Mesh
	}{
		{"remote 1KiB", y},
		{"self 1KiB", x},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(req)))
			for b.Loop() {
				if _, err := x.Call(context.Background(), tc.to.ID(), echoProto, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPublishDeliver measures one gossip message from publish on one
// node to the handler on its neighbour.
func BenchmarkPublishDeliver(b *testing.B) {
	x, y := benchPair(b)
	const topic = "/bench/gossip/1"
	got := make(chan struct{}, 1)
	if err := x.Join(topic, acceptAll, func(string, []byte) {}); err != nil {
		b.Fatal(err)
	}
	if err := y.Join(topic, acceptAll, func(string, []byte) { got <- struct{}{} }); err != nil {
		b.Fatal(err)
	}
	for x.TopicPeers(topic) == 0 || y.TopicPeers(topic) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	data := make([]byte, 1<<10)
	for i := 0; b.Loop(); i++ {
		data[0], data[1], data[2] = byte(i), byte(i>>8), byte(i>>16)
		if err := x.Publish(context.Background(), topic, data); err != nil {
			b.Fatal(err)
		}
		<-got
	}
}
