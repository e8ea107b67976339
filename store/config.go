package store

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Defaults used by DefaultConfig and for zero fields where noted.
const (
	// DefaultRetention keeps evidence for a month: long enough to look back
	// over a typical intrusion's dwell time, short enough to bound the disk.
	DefaultRetention = 30 * 24 * time.Hour

	// DefaultGCInterval runs value-log GC every ten minutes; GC rewrites at
	// most a few files per pass, so running it often keeps each pass short.
	DefaultGCInterval = 10 * time.Minute

	// DefaultMaxBlobBytes caps one blob at 512 MiB, above any memory dump or
	// fetched file a collector keeps by default.
	DefaultMaxBlobBytes = 512 << 20

	// SeenGrace keeps a seen-task mark this long past the task's NotAfter,
	// so that a replay accepted under clock skew is still refused.
	SeenGrace = time.Hour
)

// Config says where and how a Store keeps its data.
type Config struct {
	// Dir is the Badger directory; it must be set unless InMemory is.
	Dir string

	// Logger receives lifecycle events and Badger's warnings and errors.
	// Nil discards them.
	Logger *slog.Logger

	// Retention is the TTL of records, detections, results, stored tasks
	// and blobs. Zero keeps them until the size cap removes them.
	Retention time.Duration

	// MaxSizeBytes caps the store's live data; zero means no cap. The cap
	// is enforced best effort on the GC timer by dropping the oldest
	// records, then the oldest detections (see doc.go).
	MaxSizeBytes int64

	// GCInterval is the period of value-log GC and the size-cap check.
	// Zero means DefaultGCInterval.
	GCInterval time.Duration

	// MaxBlobBytes caps a single blob. Zero means DefaultMaxBlobBytes.
	MaxBlobBytes int64

	// EncryptionKey, when set, turns on Badger's encryption at rest
	// (AES, key of 16, 24 or 32 bytes). A store written with a key can only
	// be opened with the same key.
	EncryptionKey []byte

	// InMemory keeps everything in memory (for sim); Dir must be empty.
	InMemory bool
}

// DefaultConfig returns the configuration for a node keeping its evidence
// in dir.
func DefaultConfig(dir string) Config {
	return Config{
		Dir:          dir,
		Retention:    DefaultRetention,
		GCInterval:   DefaultGCInterval,
		MaxBlobBytes: DefaultMaxBlobBytes,
	}
}

// validate names the first field that makes c unusable.
func (c Config) validate() error {
	switch {
	case c.InMemory && c.Dir != "":
		return fmt.Errorf("config: Dir must be empty when InMemory is set")
	case !c.InMemory && c.Dir == "":
		return fmt.Errorf("config: Dir is required")
	case c.Retention < 0:
		return fmt.Errorf("config: Retention must not be negative")
	case c.MaxSizeBytes < 0:
		return fmt.Errorf("config: MaxSizeBytes must not be negative")
	case c.GCInterval < 0:
		return fmt.Errorf("config: GCInterval must not be negative")
	case c.MaxBlobBytes < 0:
		return fmt.Errorf("config: MaxBlobBytes must not be negative")
	}
	switch len(c.EncryptionKey) {
	case 0, 16, 24, 32:
	default:
		return fmt.Errorf("config: EncryptionKey must be 16, 24 or 32 bytes, not %d",
			len(c.EncryptionKey))
	}
	return nil
}

// withDefaults fills the zero fields that have a default.
func (c Config) withDefaults() Config {
	if c.GCInterval == 0 {
		c.GCInterval = DefaultGCInterval
	}
	if c.MaxBlobBytes == 0 {
		c.MaxBlobBytes = DefaultMaxBlobBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// badgerOptions tunes Badger for an agent that shares the host with the
// workloads it watches: far smaller caches and tables than Badger's
// server-oriented defaults.
func (c Config) badgerOptions() badger.Options {
	opt := badger.DefaultOptions(c.Dir).
		WithInMemory(c.InMemory).
		WithLogger(badgerLogger{c.Logger}).
		// Durability comes from an explicit Sync at the end of each write
		// call, one fsync per call instead of one per internal commit.
		WithSyncWrites(false).
		// 16 MiB memtables, three of them: bounded memory, still batches.
		WithMemTableSize(16 << 20).
		WithNumMemtables(3).
		WithNumCompactors(2).
		WithBlockCacheSize(32 << 20).
		// Records stay in the LSM tree; blob chunks (above 64 KiB) go to
		// the value log, where GC reclaims them without compaction churn.
		WithValueThreshold(64 << 10).
		WithValueLogFileSize(128 << 20)
	if c.InMemory {
		// In memory is for the simulator's many stores in one process: a
		// memtable's arena is allocated whole, so 1 MiB tables and no block
		// cache (so no compression, which needs one) keep each store to a
		// few MiB of heap.
		opt = opt.WithMemTableSize(1 << 20).WithNumMemtables(2).
			WithBlockCacheSize(0).WithCompression(options.None).
			WithBaseTableSize(1 << 20)
	}
	if len(c.EncryptionKey) > 0 {
		// Badger requires an index cache when encryption is on.
		opt = opt.WithEncryptionKey(c.EncryptionKey).WithIndexCacheSize(16 << 20)
	}
	return opt
}

// badgerLogger routes Badger's warnings and errors to slog and drops its
// info and debug chatter.
type badgerLogger struct{ log *slog.Logger }

func (l badgerLogger) Errorf(format string, args ...any) {
	l.emit(slog.LevelError, format, args)
}

func (l badgerLogger) Warningf(format string, args ...any) {
	l.emit(slog.LevelWarn, format, args)
}

func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}

func (l badgerLogger) emit(level slog.Level, format string, args []any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, args...))
	l.log.Log(context.Background(), level, msg, "component", "badger")
}
