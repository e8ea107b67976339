package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	"github.com/huntmesh/huntmesh/collectors"
)

// DefaultHashCacheEntries bounds a HashCache made with a zero size: a busy
// server runs a few hundred distinct executables, so this holds them all
// with room for churn while staying well under a megabyte.
const DefaultHashCacheEntries = 4096

// hashChunk is the read size for hashing; each chunk is paid for with
// env.WaitRead, so the budget's limiter sees steady small requests.
const hashChunk = 256 << 10

// fileKey identifies one version of one file: a replaced or rewritten
// executable changes inode, size or mtime and so misses the cache.
type fileKey struct {
	path  string
	dev   uint64
	ino   uint64
	size  int64
	mtime int64 // nanoseconds
}

// HashCache remembers SHA-256 digests of executables across collector runs,
// so that a recurring process hunt rereads only binaries that changed. It is
// safe for concurrent use. When full, it drops the oldest entries.
type HashCache struct {
	max int

	mu    sync.Mutex
	byKey map[fileKey]string // guarded by mu
	order []fileKey          // guarded by mu; insertion order for eviction
	hits  int                // guarded by mu
}

// NewHashCache returns an empty cache holding at most maxEntries digests;
// maxEntries <= 0 means DefaultHashCacheEntries.
func NewHashCache(maxEntries int) *HashCache {
	if maxEntries <= 0 {
		maxEntries = DefaultHashCacheEntries
	}
	return &HashCache{max: maxEntries, byKey: map[fileKey]string{}}
}

// Len is the number of digests held.
func (c *HashCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byKey)
}

// Hits is how many lookups were answered from the cache so far.
func (c *HashCache) Hits() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits
}

func (c *HashCache) get(k fileKey) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sum, ok := c.byKey[k]
	if ok {
		c.hits++
	}
	return sum, ok
}

func (c *HashCache) put(k fileKey, sum string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byKey[k]; ok {
		return
	}
	for len(c.order) >= c.max {
		delete(c.byKey, c.order[0])
		c.order = c.order[1:]
	}
	c.byKey[k] = sum
	c.order = append(c.order, k)
}

// errNotFile is returned when the path opened for hashing is not a regular
// file (a kernel thread's missing exe, a device).
var errNotFile = errors.New("not a regular file")

// hashOpen hashes the file at open (for processes /proc/PID/exe, which
// reaches the executable even after it was deleted). name is the path the
// file is known by and becomes part of the cache key. Files over maxBytes
// are refused with errTooLarge; reads wait on env's read budget.
func (c *HashCache) hashOpen(ctx context.Context, env *collectors.Env, open, name string,
	maxBytes int64) (string, error) {
	// O_NONBLOCK keeps a FIFO planted where a file was expected from
	// blocking the open; it is refused as not regular below.
	f, err := os.OpenFile(open, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()

	// Stat the opened file, not the path, so the key describes the bytes
	// about to be read.
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("stat %s: %w", open, err)
	}
	if !fi.Mode().IsRegular() {
		return "", errNotFile
	}
	if maxBytes > 0 && fi.Size() > maxBytes {
		return "", errTooLarge
	}
	k := fileKey{path: name, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		k.dev, k.ino = uint64(st.Dev), st.Ino
	}
	if sum, ok := c.get(k); ok {
		return sum, nil
	}

	// Read in chunks, paying the budget before each; a file growing while
	// it is read is cut at the bound.
	var r io.Reader = f
	if maxBytes > 0 {
		r = io.LimitReader(f, maxBytes)
	}
	h := sha256.New()
	buf := make([]byte, hashChunk)
	for {
		if err := env.WaitRead(ctx, len(buf)); err != nil {
			return "", err
		}
		n, err := r.Read(buf)
		h.Write(buf[:n])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("read %s: %w", open, err)
		}
	}
	sum := hex.EncodeToString(h.Sum(nil))
	c.put(k, sum)
	return sum, nil
}
