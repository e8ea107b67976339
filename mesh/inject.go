package mesh

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
)

// NewWithHost starts a mesh on a libp2p host that the caller built, such as
// a host on libp2p's mock network in the simulator. The host must hold its
// ed25519 private key in its peerstore: the node signs results with it. The
// mesh takes the host over and closes it on Close.
//
// ListenAddrs, DataDir, MDNS and PSK are ignored: the host already listens,
// its key is the identity, and nothing is persisted. extra options are
// appended to gossipsub's, so a caller can tune heartbeats or add a tracer.
func NewWithHost(ctx context.Context, cfg Config, h host.Host,
	extra ...pubsub.Option) (*Mesh, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start mesh: %w", err)
	}
	if h == nil {
		return nil, fmt.Errorf("%w: host is nil", errConfig)
	}
	key := h.Peerstore().PrivKey(h.ID())
	if key == nil || key.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("%w: host %s needs an ed25519 key in its peerstore",
			errConfig, h.ID())
	}

	// Fields that describe how to build a host have no meaning here.
	cfg.ListenAddrs = nil
	for _, a := range h.Addrs() {
		cfg.ListenAddrs = append(cfg.ListenAddrs, a.String())
	}
	if len(cfg.ListenAddrs) == 0 {
		return nil, fmt.Errorf("%w: host %s has no listen address", errConfig, h.ID())
	}
	cfg.DataDir, cfg.MDNS, cfg.PSK = "", false, nil
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return startOn(cfg, log, key, h, extra)
}
