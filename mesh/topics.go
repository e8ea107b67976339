package mesh

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

const (
	// maxGossipSize is the largest MaxMessageSize we accept: gossipsub's own
	// 1 MiB RPC limit less room for the envelope.
	maxGossipSize = 1<<20 - gossipOverhead

	// gossipOverhead is room for a message's topic, signature, key and seqno.
	gossipOverhead = 8 << 10

	// validateTimeout bounds one run of a caller's validator.
	validateTimeout = 5 * time.Second
)

// Drop reasons used in "drop/<topic>/<reason>" counters.
const (
	dropTooLarge  = "too-large"
	dropRateLimit = "rate-limit"
	dropRejected  = "rejected"
	dropIgnored   = "ignored"
)

// joined is one topic the mesh takes part in.
type joined struct {
	name   string
	topic  *pubsub.Topic
	sub    *pubsub.Subscription
	events *pubsub.TopicEventHandler // nil unless someone watches joins
	stop   sync.Once
}

// close cancels the subscription and event handler of the topic.
func (j *joined) close() {
	j.stop.Do(func() {
		if j.events != nil {
			j.events.Cancel()
		}
		j.sub.Cancel()
	})
}

// Join subscribes to a gossipsub topic. Every message, including this node's
// own, first passes validate: nil accepts it, ErrIgnore drops it silently,
// any other error rejects it (and lowers the score of the peer that sent
// it). Accepted messages go to handler, one at a time in arrival order, with
// from set to the authenticated originator's peer ID; this node's own
// publications are delivered to handler exactly once. Messages over
// MaxMessageSize and floods beyond the per-peer rate are dropped before
// validate and counted. Join fails if the topic is already joined.
func (m *Mesh) Join(topic string, validate func(from string, data []byte) error,
	handler func(from string, data []byte)) error {
	_, err := m.join(topic, validate, handler, false)
	return err
}

// join does the work of Join; watch also opens a peer-event handler.
func (m *Mesh) join(topic string, validate func(from string, data []byte) error,
	handler func(from string, data []byte), watch bool) (*joined, error) {
	if validate == nil || handler == nil {
		return nil, fmt.Errorf("join %s: validate and handler are required", topic)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if _, ok := m.topics[topic]; ok {
		return nil, fmt.Errorf("join %s: already joined", topic)
	}

	// The validator runs before any handler and before forwarding.
	err := m.ps.RegisterTopicValidator(topic, m.validator(topic, validate),
		pubsub.WithValidatorTimeout(validateTimeout))
	if err != nil {
		return nil, fmt.Errorf("join %s: register validator: %w", topic, err)
	}
	t, err := m.ps.Join(topic)
	if err != nil {
		m.ps.UnregisterTopicValidator(topic)
		return nil, fmt.Errorf("join %s: %w", topic, err)
	}
	if err := t.SetScoreParams(topicScoreParams()); err != nil {
		m.log.Warn("topic scoring off", "topic", topic, "err", err)
	}
	j := &joined{name: topic, topic: t}
	if watch {
		if j.events, err = t.EventHandler(); err != nil {
			return nil, fmt.Errorf("join %s: watch peers: %w", topic, err)
		}
	}
	if j.sub, err = t.Subscribe(); err != nil {
		if j.events != nil {
			j.events.Cancel()
		}
		return nil, fmt.Errorf("join %s: subscribe: %w", topic, err)
	}
	m.topics[topic] = j

	// One reader per topic keeps delivery in order and never overlaps.
	m.wg.Add(1)
	go m.readTopic(j, handler)
	return j, nil
}

// readTopic hands accepted messages to handler until the mesh closes.
func (m *Mesh) readTopic(j *joined, handler func(from string, data []byte)) {
	defer m.wg.Done()
	for {
		msg, err := j.sub.Next(m.ctx)
		if err != nil {
			return // cancelled subscription or closed mesh
		}
		m.stats.add("deliver/" + j.name)
		m.deliver(j.name, handler, msg)
	}
}

// deliver runs a topic handler, containing a panic so that one bad message
// cannot stop the topic or the node.
func (m *Mesh) deliver(topic string, handler func(string, []byte), msg *pubsub.Message) {
	defer func() {
		if r := recover(); r != nil {
			m.stats.add("handler-panic/" + topic)
			m.log.Error("topic handler panicked", "topic", topic,
				"peer", msg.GetFrom().String(), "err", fmt.Sprint(r))
		}
	}()
	handler(msg.GetFrom().String(), msg.Data)
}

// Publish sends data on a joined topic. Data over MaxMessageSize fails with
// ErrTooLarge before anything is sent; data this node's own validator
// refuses fails too.
func (m *Mesh) Publish(ctx context.Context, topic string, data []byte) error {
	if len(data) > m.cfg.MaxMessageSize {
		m.stats.add("refused/" + topic + "/" + dropTooLarge)
		return fmt.Errorf("publish %s: %d bytes over %d: %w",
			topic, len(data), m.cfg.MaxMessageSize, ErrTooLarge)
	}
	m.mu.Lock()
	j, ok := m.topics[topic]
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if !ok {
		return fmt.Errorf("publish %s: %w", topic, ErrNotJoined)
	}
	if err := j.topic.Publish(ctx, data); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	m.stats.add("publish/" + topic)
	return nil
}

// TopicPeers returns how many connected peers are known to subscribe to a
// joined topic; tests wait on it before publishing.
func (m *Mesh) TopicPeers(topic string) int {
	m.mu.Lock()
	j, ok := m.topics[topic]
	m.mu.Unlock()
	if !ok {
		return 0
	}
	return len(j.topic.ListPeers())
}

// MeshPeers returns how many peers are in this node's gossipsub mesh for a
// topic. A message received before the mesh forms reaches only the peers the
// publisher floods it to, so tests (and impatient callers) wait on this.
func (m *Mesh) MeshPeers(topic string) int { return m.tracer.meshPeers(topic) }

// validator wraps a caller's validate with the size cap, the per-peer rate
// limit, counting and logging.
func (m *Mesh) validator(topic string, validate func(string, []byte) error) pubsub.ValidatorEx {
	self := m.host.ID()
	return func(_ context.Context, src peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		from := msg.GetFrom()

		// The size cap is ours, never gossipsub's 1 MiB.
		if len(msg.Data) > m.cfg.MaxMessageSize {
			m.drop(topic, dropTooLarge, from, msg.ReceivedFrom, nil)
			return pubsub.ValidationReject
		}

		// Rate-limit by originator; our own publications are not limited.
		if src != self && !m.limits.allow(topic, from) {
			m.drop(topic, dropRateLimit, from, msg.ReceivedFrom, nil)
			return pubsub.ValidationIgnore
		}

		err := safeValidate(validate, from.String(), msg.Data)
		switch {
		case err == nil:
			return pubsub.ValidationAccept
		case errors.Is(err, ErrIgnore):
			m.drop(topic, dropIgnored, from, msg.ReceivedFrom, nil)
			return pubsub.ValidationIgnore
		default:
			m.drop(topic, dropRejected, from, msg.ReceivedFrom, err)
			return pubsub.ValidationReject
		}
	}
}

// safeValidate runs a caller's validator, turning a panic into a rejection so
// that hostile input can never bring the node down.
func safeValidate(validate func(string, []byte) error, from string, data []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("validator panic: %v", r)
		}
	}()
	return validate(from, data)
}

// drop counts and logs one dropped message. Rejections are logged at Warn
// through a limiter so a flood cannot flood the log; the rest at Debug.
func (m *Mesh) drop(topic, reason string, from, via peer.ID, err error) {
	m.stats.add("drop/" + topic + "/" + reason)
	attrs := []any{"topic", topic, "reason", reason, "peer", from.String(),
		"via", via.String()}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	if reason == dropIgnored || !m.limits.logAllowed() {
		m.log.Debug("message dropped", attrs...)
		return
	}
	m.log.Warn("message dropped", attrs...)
}

// limiter keeps one token bucket per topic and originating peer.
type limiter struct {
	rate  rate.Limit
	burst int
	logs  *rate.Limiter // bounds Warn logs about drops

	mu      sync.Mutex
	buckets map[limitKey]*bucket // guarded by mu
}

// limitKey names one bucket.
type limitKey struct {
	topic string
	peer  peer.ID
}

// bucket is a token bucket and when it was last used.
type bucket struct {
	lim  *rate.Limiter
	used time.Time
}

// maxBuckets bounds the limiter's memory; idle buckets are swept beyond it.
const maxBuckets = 4096

func newLimiter(perSec float64, burst int) *limiter {
	return &limiter{
		rate:    rate.Limit(perSec),
		burst:   burst,
		logs:    rate.NewLimiter(1, 10),
		buckets: make(map[limitKey]*bucket),
	}
}

// allow takes a token from the bucket of topic and p.
func (l *limiter) allow(topic string, p peer.ID) bool {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	k := limitKey{topic, p}
	b := l.buckets[k]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.sweepLocked(now)
		}
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[k] = b
	}
	b.used = now
	return b.lim.AllowN(now, 1)
}

// sweepLocked forgets buckets that have refilled, since a full bucket
// carries no state worth keeping. If that frees less than half, it forgets
// buckets at random (map order) down to half: a peer evicted early merely
// gets a fresh burst.
func (l *limiter) sweepLocked(now time.Time) {
	refill := time.Duration(float64(l.burst) / float64(l.rate) * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.used) > refill {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < maxBuckets/2 {
			return
		}
		delete(l.buckets, k)
	}
}

// logAllowed reports whether a Warn about a drop may be written now.
func (l *limiter) logAllowed() bool { return l.logs.Allow() }

// scoreParams are the gossipsub peer-score parameters. Topic parameters are
// set per topic on Join. IP colocation is off: OT segments sit behind NAT
// and tests share 127.0.0.1, so many honest peers share an address.
func scoreParams() *pubsub.PeerScoreParams {
	return &pubsub.PeerScoreParams{
		Topics:        map[string]*pubsub.TopicScoreParams{},
		TopicScoreCap: 50,

		AppSpecificScore:  func(peer.ID) float64 { return 0 },
		AppSpecificWeight: 1,

		// Protocol misbehaviour (broken promises, graft floods) adds up fast
		// and is forgiven over ten minutes.
		BehaviourPenaltyWeight:    -10,
		BehaviourPenaltyThreshold: 6,
		BehaviourPenaltyDecay:     pubsub.ScoreParameterDecay(10 * time.Minute),

		DecayInterval: time.Second,
		DecayToZero:   0.01,
		RetainScore:   10 * time.Minute,
	}
}

// topicScoreParams rewards time in the mesh and first deliveries and punishes
// invalid messages quadratically: five rejected messages put a peer below the
// gossip threshold, ten gray-list it, and it is forgiven within an hour.
// Mesh delivery rates are not scored: hunt traffic is bursty and sparse.
func topicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight: 1,

		TimeInMeshWeight:  0.01,
		TimeInMeshQuantum: time.Second,
		TimeInMeshCap:     3600,

		FirstMessageDeliveriesWeight: 1,
		FirstMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
		FirstMessageDeliveriesCap:    20,

		InvalidMessageDeliveriesWeight: -10,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
	}
}

// scoreThresholds pair with the parameters above. PX is taken only from
// peers that earned some score, so a stranger cannot steer our dialling.
func scoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		GossipThreshold:             -250,
		PublishThreshold:            -500,
		GraylistThreshold:           -1000,
		AcceptPXThreshold:           5,
		OpportunisticGraftThreshold: 3,
	}
}
