package files

import (
	"crypto/sha256"
	"fmt"
	"sync"

	"github.com/huntmesh/huntmesh/collectors/yarascan"
)

// ruleCacheSize bounds how many compiled rule sets the files collector
// keeps. Compiling even a small set costs milliseconds (miner.yar: about
// 14 ms here), paid by Validate and again by every run of a recurring hunt.
const ruleCacheSize = 8

// ruleCache keeps compiled rule sets by the hash of their sources, so that
// a hunt's rules are compiled once for Validate and the runs that follow.
// Entries are counted while in use and destroyed only when evicted and no
// longer used. It is safe for concurrent use.
type ruleCache struct {
	mu      sync.Mutex
	entries map[[32]byte]*cachedRules
	order   [][32]byte // least recently used first
}

type cachedRules struct {
	rules   *yarascan.Rules
	refs    int
	evicted bool
}

func newRuleCache() *ruleCache {
	return &ruleCache{entries: map[[32]byte]*cachedRules{}}
}

// sourcesKey identifies sources by name and text.
func sourcesKey(srcs []yarascan.Source) [32]byte {
	h := sha256.New()
	for _, s := range srcs {
		fmt.Fprintf(h, "%d:%s\x00%d:%s\x00", len(s.Name), s.Name, len(s.Text), s.Text)
	}
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k
}

// acquire returns the compiled form of srcs, compiling it on a miss, and
// a release to call once the caller no longer scans with it.
func (c *ruleCache) acquire(srcs []yarascan.Source) (*yarascan.Rules, func(), error) {
	k := sourcesKey(srcs)
	c.mu.Lock()
	if e, ok := c.entries[k]; ok {
		e.refs++
		c.touch(k)
		c.mu.Unlock()
		return e.rules, c.releaser(e), nil
	}
	c.mu.Unlock()

	// Compile outside the lock; a concurrent miss may compile the same
	// sources, and the loser's copy is dropped.
	r, err := yarascan.Compile(srcs)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[k]; ok {
		r.Destroy()
		e.refs++
		c.touch(k)
		return e.rules, c.releaser(e), nil
	}
	e := &cachedRules{rules: r, refs: 1}
	c.entries[k] = e
	c.order = append(c.order, k)
	for len(c.order) > ruleCacheSize {
		old := c.entries[c.order[0]]
		delete(c.entries, c.order[0])
		c.order = c.order[1:]
		old.evicted = true
		if old.refs == 0 {
			old.rules.Destroy()
		}
	}
	return e.rules, c.releaser(e), nil
}

// touch marks k as just used; c.mu is held.
func (c *ruleCache) touch(k [32]byte) {
	for i, o := range c.order {
		if o == k {
			c.order = append(append(c.order[:i:i], c.order[i+1:]...), k)
			return
		}
	}
}

func (c *ruleCache) releaser(e *cachedRules) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			e.refs--
			if e.refs == 0 && e.evicted {
				e.rules.Destroy()
			}
		})
	}
}

// len is the number of cached rule sets.
func (c *ruleCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
