package sim

import (
	"fmt"
	"time"

	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// linkState is one undirected link between two nodes.
type linkState struct {
	a, b *Node
	link mocknet.Link // nil while cut
}

// link makes a mock link between a and b with the default conditions and
// dials it.
func (s *Sim) link(a, b *Node) error {
	l, err := s.mn.LinkPeers(a.host.ID(), b.host.ID())
	if err != nil {
		return fmt.Errorf("link %s-%s: %w", a.Name, b.Name, err)
	}
	if _, err := s.mn.ConnectPeers(a.host.ID(), b.host.ID()); err != nil {
		return fmt.Errorf("connect %s-%s: %w", a.Name, b.Name, err)
	}
	s.mu.Lock()
	s.links = append(s.links, &linkState{a: a, b: b, link: l})
	s.mu.Unlock()
	return nil
}

// linkTo makes sure every node in others has a link to n, without
// connecting: on a real network any node can dial any other, and a node
// dials the issuer of a task back to answer it.
func (s *Sim) linkTo(n *Node, others []*Node) error {
	for _, o := range others {
		if o == n || len(s.mn.LinksBetweenPeers(n.host.ID(), o.host.ID())) > 0 {
			continue
		}
		s.mu.Lock()
		apart := s.group != nil && s.group[n] != s.group[o]
		s.mu.Unlock()
		if apart {
			continue
		}
		l, err := s.mn.LinkPeers(n.host.ID(), o.host.ID())
		if err != nil {
			return fmt.Errorf("link %s-%s: %w", n.Name, o.Name, err)
		}
		s.mu.Lock()
		s.links = append(s.links, &linkState{a: n, b: o, link: l})
		s.mu.Unlock()
	}
	return nil
}

// conditionLinks redraws every live link's delay each JitterEvery: the base
// latency, plus uniform jitter, plus an RTO stall when the link loses a
// segment in this period. Mock streams deliver in order, so a stall also
// holds back what follows, as TCP's head-of-line blocking does.
func (s *Sim) conditionLinks() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.JitterEvery)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		for _, l := range s.links {
			if l.link == nil {
				continue
			}
			d := s.cfg.Latency
			if s.cfg.Jitter > 0 {
				d += time.Duration(s.rng.Int64N(int64(2*s.cfg.Jitter)+1)) - s.cfg.Jitter
			}
			if s.cfg.Loss > 0 && s.rng.Float64() < s.cfg.Loss {
				d += s.cfg.RTO
			}
			l.link.SetOptions(mocknet.LinkOptions{Latency: d, Bandwidth: s.cfg.Bandwidth})
		}
		s.mu.Unlock()
	}
}

// Partition cuts every link between nodes of different groups and closes
// their connections; nodes in no group stay with the first group. Links
// inside a group are untouched. Heal undoes it.
func (s *Sim) Partition(groups [][]int) error {
	group := map[*Node]int{}
	nodes := s.Nodes()
	for g, members := range groups {
		for _, i := range members {
			if i < 0 || i >= len(nodes) {
				return fmt.Errorf("partition: no node %d", i)
			}
			group[nodes[i]] = g
		}
	}
	s.mu.Lock()
	s.group = group
	var cut []*linkState
	for _, l := range s.links {
		if l.link != nil && group[l.a] != group[l.b] {
			cut = append(cut, l)
		}
	}
	s.mu.Unlock()
	// Remove the links first, so that nothing can dial across until Heal,
	// then close the connections: the other way round, a node redials in
	// between (an answer's retry, the mesh's reconnects) and its new
	// connection outlives the link.
	for _, l := range cut {
		if err := s.mn.UnlinkPeers(l.a.host.ID(), l.b.host.ID()); err != nil {
			return fmt.Errorf("partition %s-%s: %w", l.a.Name, l.b.Name, err)
		}
		s.mu.Lock()
		l.link = nil
		s.cut[l] = true
		s.mu.Unlock()
	}
	for _, l := range cut {
		if err := s.mn.DisconnectPeers(l.a.host.ID(), l.b.host.ID()); err != nil {
			s.log.Debug("partition: disconnect", "a", l.a.Name, "b", l.b.Name, "err", err)
		}
	}
	// Mock connections close in the background, and a dial that passed
	// its link check before the cut completes after it: close whatever
	// crosses until none has for five checks in a row.
	deadline := time.Now().Add(5 * time.Second)
	for clean := 0; clean < 5; {
		if n := s.crossConns(group, true); n > 0 {
			clean = 0
			if time.Now().After(deadline) {
				return fmt.Errorf("partition: %d connections still cross the cut", n)
			}
		} else {
			clean++
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.log.Info("partitioned", "groups", len(groups), "links_cut", len(cut))
	return nil
}

// crossConns counts the open connections between nodes of different
// groups, and closes them if asked.
func (s *Sim) crossConns(group map[*Node]int, closeThem bool) int {
	byID := map[string]*Node{}
	for _, n := range s.Nodes() {
		byID[string(n.host.ID())] = n
	}
	cross := 0
	for _, n := range s.Nodes() {
		for _, c := range n.host.Network().Conns() {
			if o := byID[string(c.RemotePeer())]; o != nil && group[o] != group[n] {
				cross++
				if closeThem {
					c.Close()
				}
			}
		}
	}
	return cross
}

// Heal restores every link Partition cut and reconnects the nodes at both
// ends that are still running, as their dialers would once the network
// is back.
func (s *Sim) Heal() error {
	s.mu.Lock()
	var cut []*linkState
	for l := range s.cut {
		cut = append(cut, l)
	}
	s.cut = map[*linkState]bool{}
	s.group = nil
	s.mu.Unlock()
	for _, l := range cut {
		ml, err := s.mn.LinkPeers(l.a.host.ID(), l.b.host.ID())
		if err != nil {
			return fmt.Errorf("heal %s-%s: %w", l.a.Name, l.b.Name, err)
		}
		s.mu.Lock()
		l.link = ml
		s.mu.Unlock()
		if !l.a.Up() || !l.b.Up() {
			continue
		}
		if _, err := s.mn.ConnectPeers(l.a.host.ID(), l.b.host.ID()); err != nil {
			s.log.Debug("heal: connect", "a", l.a.Name, "b", l.b.Name, "err", err)
		}
	}
	s.log.Info("healed", "links", len(cut))
	return nil
}
