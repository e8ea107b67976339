package mesh

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

// Config tunes a Mesh. Start from DefaultConfig and change what you need;
// New rejects a Config whose fields do not make sense and names the field.
type Config struct {
	// DataDir holds identity.key (the node's ed25519 identity, mode 0600) and
	// peers.json (the last-known peers). Empty means an ephemeral identity and
	// nothing persisted, which suits tests and short-lived CLI peers.
	DataDir string

	// ListenAddrs are the multiaddrs to listen on.
	ListenAddrs []string

	// StaticPeers are full multiaddrs ending in /p2p/ID. They are dialled at
	// start, protected from connection trimming, and re-dialled with backoff
	// whenever the connection drops.
	StaticPeers []string

	// MDNS turns on multicast DNS discovery on the local network.
	MDNS bool

	// PSK is an optional 32-byte pre-shared key that makes the mesh a libp2p
	// private network: peers without the same key cannot complete a
	// handshake. NB: libp2p cannot run QUIC inside a private network, so QUIC
	// listen addresses are dropped (and logged) when PSK is set.
	PSK []byte

	// MaxMessageSize caps a gossip message in bytes. Larger messages are
	// refused before publishing and rejected by every validator.
	MaxMessageSize int

	// MaxStreamSize caps a request or a response body in bytes.
	MaxStreamSize int

	// StreamTimeout bounds a whole request/response exchange when the
	// caller's context has no earlier deadline, and every served request.
	StreamTimeout time.Duration

	// PresenceInterval is how often this node announces itself.
	PresenceInterval time.Duration

	// Presence returns the opaque bytes this node announces (labels, host
	// name, versions: the node decides). Nil announces empty bytes.
	Presence func() []byte

	// TopicRate is the sustained number of messages per second accepted from
	// one originating peer on one topic; TopicBurst is the bucket size.
	TopicRate  float64
	TopicBurst int

	// MaxKnownPeers bounds peers.json and the redial list built from it.
	MaxKnownPeers int

	// Logger receives the mesh's and gossipsub's logs. Nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a Config that works on one machine and a small LAN.
func DefaultConfig() Config {
	return Config{
		// Loopback and an ephemeral port: nothing is exposed until the
		// operator asks for it, and tests never collide on ports.
		ListenAddrs: []string{
			"/ip4/127.0.0.1/tcp/0",
			"/ip4/127.0.0.1/udp/0/quic-v1",
		},

		// 64 KiB fits any hunt or intel delta we expect; bulk data goes over
		// streams. It keeps gossip cheap to validate and forward, well under
		// gossipsub's own 1 MiB limit which we never rely on.
		MaxMessageSize: 64 << 10,

		// 4 MiB holds a capped result page with its matching rows while
		// bounding what a hostile peer can make us buffer per stream.
		MaxStreamSize: 4 << 20,

		// 30 s lets a loaded node answer a result stream, yet frees a stream
		// that a silent peer holds open.
		StreamTimeout: 30 * time.Second,

		// 5 s makes a new or departed node visible within a few seconds while
		// costing one small message per node per interval.
		PresenceInterval: 5 * time.Second,

		// 10 messages/s with a burst of 100 per originator and topic lets an
		// analyst fire a batch of hunts, but stops one peer flooding a topic.
		TopicRate:  10,
		TopicBurst: 100,

		// 128 peers (a few KiB of JSON) is enough to find the mesh again after
		// a restart without letting the file grow with churn.
		MaxKnownPeers: 128,
	}
}

// pskSize is the only pre-shared key length libp2p accepts.
const pskSize = 32

// errConfig marks configuration errors.
var errConfig = errors.New("invalid mesh config")

// validate checks each field and names the first bad one.
func (c *Config) validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", errConfig, field, fmt.Sprintf(format, args...))
	}
	if len(c.ListenAddrs) == 0 {
		return bad("ListenAddrs", "at least one address is required")
	}
	for _, a := range c.ListenAddrs {
		if _, err := ma.NewMultiaddr(a); err != nil {
			return bad("ListenAddrs", "%q: %v", a, err)
		}
	}
	for _, a := range c.StaticPeers {
		if _, err := parsePeerAddr(a); err != nil {
			return bad("StaticPeers", "%q: %v", a, err)
		}
	}
	if len(c.PSK) != 0 && len(c.PSK) != pskSize {
		return bad("PSK", "must be %d bytes, got %d", pskSize, len(c.PSK))
	}
	if c.MaxMessageSize <= 0 || c.MaxMessageSize > maxGossipSize {
		return bad("MaxMessageSize", "must be in 1..%d, got %d", maxGossipSize, c.MaxMessageSize)
	}
	if c.MaxStreamSize <= 0 {
		return bad("MaxStreamSize", "must be positive, got %d", c.MaxStreamSize)
	}
	if c.StreamTimeout <= 0 {
		return bad("StreamTimeout", "must be positive, got %s", c.StreamTimeout)
	}
	if c.PresenceInterval < 100*time.Millisecond {
		return bad("PresenceInterval", "must be at least 100ms, got %s", c.PresenceInterval)
	}
	if c.TopicRate <= 0 {
		return bad("TopicRate", "must be positive, got %g", c.TopicRate)
	}
	if c.TopicBurst <= 0 {
		return bad("TopicBurst", "must be positive, got %d", c.TopicBurst)
	}
	if c.MaxKnownPeers < 0 {
		return bad("MaxKnownPeers", "must not be negative, got %d", c.MaxKnownPeers)
	}
	return nil
}
