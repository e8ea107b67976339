package node

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Anti-entropy drivers shared by intel sync and task catch-up: a pull
// against every peer that connects, and a pull against one random
// connected peer on a timer, for what gossip lost without a new connection.

// pullTimeout bounds one pull against one peer.
const pullTimeout = 30 * time.Second

// pull is one anti-entropy round against a peer.
type pull func(ctx context.Context, peer string) error

// pullOnConnect returns an OnConnect hook that runs p against the new
// peer. The peer may still be registering its handlers, so a failed first
// try is repeated shortly.
func (n *Node) pullOnConnect(what string, p pull) func(peer string) {
	return func(peer string) {
		for _, wait := range []time.Duration{50 * time.Millisecond, 500 * time.Millisecond,
			2 * time.Second} {
			select {
			case <-n.ctx.Done():
				return
			case <-time.After(wait):
			}
			ctx, cancel := context.WithTimeout(n.ctx, pullTimeout)
			err := p(ctx, peer)
			cancel()
			if err == nil || errors.Is(err, context.Canceled) {
				return
			}
			n.log.Debug(what+" on connect", "peer", shortID(peer), "err", err)
		}
	}
}

// startPullLoop runs p against one random connected peer every interval
// until the node closes.
func (n *Node) startPullLoop(what string, every time.Duration, p pull) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-n.ctx.Done():
				return
			case <-t.C:
			}
			var peers []string
			for _, pv := range n.mesh.Peers() {
				if pv.Connected {
					peers = append(peers, pv.ID)
				}
			}
			if len(peers) == 0 {
				continue
			}
			peer := peers[rand.IntN(len(peers))]
			ctx, cancel := context.WithTimeout(n.ctx, pullTimeout)
			if err := p(ctx, peer); err != nil {
				n.log.Debug(what, "peer", shortID(peer), "err", err)
			}
			cancel()
		}
	}()
}
