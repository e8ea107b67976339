package intel

import "sort"

// acMatcher is an Aho–Corasick automaton over ASCII-folded byte strings: one
// pass over a command line finds every substring indicator in it, however
// many there are. The root's transitions are a dense table (most bytes of
// a command line fall back to it); deeper states keep sorted sparse edges.
type acMatcher struct {
	root  [256]int32
	nodes []acNode
}

// acNode is one automaton state.
type acNode struct {
	labels  []byte  // edge bytes, sorted
	targets []int32 // edge targets, parallel to labels
	fail    int32
	outs    []int32 // pattern ids that end here, including via fail links
}

// step finds the edge for c, or -1.
func (n *acNode) step(c byte) int32 {
	l := n.labels
	if len(l) <= 8 {
		for i, b := range l {
			if b == c {
				return n.targets[i]
			}
		}
		return -1
	}
	i := sort.Search(len(l), func(i int) bool { return l[i] >= c })
	if i < len(l) && l[i] == c {
		return n.targets[i]
	}
	return -1
}

// newACMatcher builds an automaton; pattern i is reported as id i. Patterns
// must already be ASCII-folded.
func newACMatcher(patterns []string) *acMatcher {
	m := &acMatcher{nodes: []acNode{{}}}

	// Build the trie with unsorted edges first, kept in maps for speed.
	edges := []map[byte]int32{{}}
	for id, p := range patterns {
		s := int32(0)
		for i := 0; i < len(p); i++ {
			t, ok := edges[s][p[i]]
			if !ok {
				t = int32(len(m.nodes))
				m.nodes = append(m.nodes, acNode{})
				edges = append(edges, map[byte]int32{})
				edges[s][p[i]] = t
			}
			s = t
		}
		m.nodes[s].outs = append(m.nodes[s].outs, int32(id))
	}

	// Freeze edges into sorted slices.
	for s, e := range edges {
		n := &m.nodes[s]
		n.labels = make([]byte, 0, len(e))
		for b := range e {
			n.labels = append(n.labels, b)
		}
		sort.Slice(n.labels, func(i, j int) bool { return n.labels[i] < n.labels[j] })
		n.targets = make([]int32, len(n.labels))
		for i, b := range n.labels {
			n.targets[i] = e[b]
		}
	}
	for c := 0; c < 256; c++ {
		m.root[c] = m.nodes[0].step(byte(c))
		if m.root[c] < 0 {
			m.root[c] = 0
		}
	}

	// Breadth-first: each state's fail link is the longest proper suffix
	// that is also a trie path; outputs are inherited along it.
	queue := make([]int32, 0, len(m.nodes))
	for _, t := range m.nodes[0].targets {
		m.nodes[t].fail = 0
		queue = append(queue, t)
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for i, c := range m.nodes[s].labels {
			t := m.nodes[s].targets[i]
			f := m.nodes[s].fail
			m.nodes[t].fail = m.next(f, c)
			if fo := m.nodes[m.nodes[t].fail].outs; len(fo) > 0 {
				m.nodes[t].outs = append(m.nodes[t].outs, fo...)
			}
			queue = append(queue, t)
		}
	}
	return m
}

// next is the automaton's transition from s on c.
func (m *acMatcher) next(s int32, c byte) int32 {
	for s != 0 {
		if t := m.nodes[s].step(c); t >= 0 {
			return t
		}
		s = m.nodes[s].fail
	}
	return m.root[c]
}

// scan calls hit for every pattern id found in text, folding ASCII case as
// it reads. An id may be reported more than once.
func (m *acMatcher) scan(text string, hit func(id int32)) {
	s := int32(0)
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		s = m.next(s, c)
		for _, id := range m.nodes[s].outs {
			hit(id)
		}
	}
}
