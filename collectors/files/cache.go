package files

import (
	"sync"
	"sync/atomic"
)

// DefaultCacheEntries bounds a HashCache made with NewHashCache(0). An entry
// is a few hundred bytes, so a million entries stays near 300 MiB at worst;
// 200,000 covers a typical server's binaries and configuration.
const DefaultCacheEntries = 200_000

// fileKey identifies one version of a file: a change of content changes
// size or mtime, and any write or chmod changes ctime, which a user cannot
// set back.
type fileKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // nanoseconds
}

// digest is what was learnt from one version of a file.
type digest struct {
	md5, sha1, sha256 string // empty when not computed
	fileType          string
	yara              map[string][]string // rule-set hash -> matching rules
	meta              []metaField         // what the key fixes (metaOf); nil if unknown
}

// HashCache remembers hashes, file types and YARA results by file version,
// so that re-scanning an unchanged tree reads nothing. It is safe for
// concurrent use and bounded: when full, an arbitrary entry is dropped.
type HashCache struct {
	max    int
	hits   atomic.Int64
	misses atomic.Int64

	mu      sync.Mutex
	entries map[fileKey]*digest // guarded by mu; values are never mutated
}

// NewHashCache returns an empty cache holding at most maxEntries files;
// 0 means DefaultCacheEntries.
func NewHashCache(maxEntries int) *HashCache {
	if maxEntries <= 0 {
		maxEntries = DefaultCacheEntries
	}
	return &HashCache{max: maxEntries, entries: map[fileKey]*digest{}}
}

// Len is the number of cached files.
func (c *HashCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Hits is how many lookups found a usable entry.
func (c *HashCache) Hits() int64 { return c.hits.Load() }

// Misses is how many lookups had to read the file.
func (c *HashCache) Misses() int64 { return c.misses.Load() }

func (c *HashCache) get(k fileKey) *digest {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[k]
}

// put merges d into the entry for k. A new digest value is stored so that
// readers holding the old one are unaffected.
func (c *HashCache) put(k fileKey, d *digest) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	merged := d
	if old := c.entries[k]; old != nil {
		merged = old.merge(d)
	} else if len(c.entries) >= c.max {
		for victim := range c.entries {
			delete(c.entries, victim)
			break
		}
	}
	c.entries[k] = merged
}

// merge returns a copy of d with the values of n added.
func (d *digest) merge(n *digest) *digest {
	out := *d
	out.md5 = first(n.md5, d.md5)
	out.sha1 = first(n.sha1, d.sha1)
	out.sha256 = first(n.sha256, d.sha256)
	out.fileType = first(n.fileType, d.fileType)
	if n.meta != nil {
		out.meta = n.meta
	}
	out.yara = make(map[string][]string, len(d.yara)+len(n.yara))
	for k, v := range d.yara {
		out.yara[k] = v
	}
	for k, v := range n.yara {
		out.yara[k] = v
	}
	return &out
}

// covers reports whether d holds everything a scan wants.
func (d *digest) covers(want hashSet, sets []ruleSet) bool {
	if d == nil || d.fileType == "" {
		return false
	}
	if (want.md5 && d.md5 == "") || (want.sha1 && d.sha1 == "") ||
		(want.sha256 && d.sha256 == "") {
		return false
	}
	for _, s := range sets {
		if _, ok := d.yara[s.hash]; !ok {
			return false
		}
	}
	return true
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
