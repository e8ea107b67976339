package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Errors callers branch on with errors.Is. Badger's own sentinels are
// translated into these at the package boundary.
var (
	// ErrNotFound is returned when a task, blob or meta key is absent.
	ErrNotFound = errors.New("not found")

	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("store closed")

	// ErrInvalid is returned for arguments the store cannot key: empty or
	// oversized IDs, IDs with NUL bytes, negative sequence numbers.
	ErrInvalid = errors.New("invalid argument")

	// ErrEncryptionKey is returned by Open when the store was written with
	// a different encryption key, or with one and opened without.
	ErrEncryptionKey = errors.New("encryption key does not match the store")

	// ErrLocked is returned by Open when another process holds the store.
	ErrLocked = errors.New("store in use by another process")

	// ErrBadHash is returned for a blob hash that is not 64 hex digits.
	ErrBadHash = errors.New("blob hash must be 64 lower-case hex digits")

	// ErrBlobTooLarge is returned by PutBlob past Config.MaxBlobBytes.
	ErrBlobTooLarge = errors.New("blob too large")

	// ErrCorrupt is returned when stored bytes fail to decode or verify.
	ErrCorrupt = errors.New("stored data corrupt")

	// ErrStop may be returned by a Records or Detections callback to end
	// the scan early without an error.
	ErrStop = errors.New("stop scan")
)

// Store is huntmesh's evidence store. It is safe for concurrent use.
type Store struct {
	db  *badger.DB
	cfg Config
	seq *badger.Sequence // unique suffix of record and detection keys

	// mu guards the fields below it: the count of calls in flight and
	// whether Close has begun, so Close waits for calls to finish and
	// calls made after it fail with ErrClosed instead of reaching Badger.
	mu       sync.Mutex
	cond     *sync.Cond
	inflight int
	closed   bool
	closeErr error

	stop chan struct{}
	done chan struct{}
}

// seqBandwidth is how many sequence numbers Badger leases at once; a crash
// skips at most this many, which only leaves gaps in unique suffixes.
const seqBandwidth = 1000

// Open opens (or creates) the store described by cfg and starts its GC
// timer. Close must be called to release it.
func Open(cfg Config) (*Store, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	cfg = cfg.withDefaults()
	start := time.Now()

	db, err := badger.Open(cfg.badgerOptions())
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", cfg.Dir, translateOpen(err))
	}
	seq, err := db.GetSequence([]byte(keySequence), seqBandwidth)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: sequence: %w", cfg.Dir, err)
	}

	s := &Store{
		db:   db,
		cfg:  cfg,
		seq:  seq,
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	s.cond = sync.NewCond(&s.mu)
	go s.maintain()

	cfg.Logger.Info("store opened", "dir", cfg.Dir, "in_memory", cfg.InMemory,
		"encrypted", len(cfg.EncryptionKey) > 0, "dur", time.Since(start))
	return s, nil
}

// translateOpen maps Badger's open failures onto our sentinels.
func translateOpen(err error) error {
	switch {
	case errors.Is(err, badger.ErrEncryptionKeyMismatch):
		return ErrEncryptionKey
	case strings.Contains(err.Error(), "Cannot acquire directory lock"):
		return fmt.Errorf("%w: %w", ErrLocked, err)
	}
	return err
}

// Close stops the GC timer, waits for calls in flight, and closes Badger.
// It is safe to call more than once; later calls return the first result.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return s.closeErr
	}
	s.closed = true
	for s.inflight > 0 {
		s.cond.Wait()
	}
	s.mu.Unlock()

	close(s.stop)
	<-s.done

	err := errors.Join(s.seq.Release(), s.db.Close())
	if err != nil {
		err = fmt.Errorf("close store: %w", err)
	}
	s.mu.Lock()
	s.closeErr = err
	s.mu.Unlock()
	s.cfg.Logger.Info("store closed", "dir", s.cfg.Dir)
	return err
}

// enter registers a call in flight; it fails once Close has begun. Every
// successful enter is paired with a leave.
func (s *Store) enter() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.inflight++
	return nil
}

func (s *Store) leave() {
	s.mu.Lock()
	s.inflight--
	if s.inflight == 0 {
		s.cond.Broadcast()
	}
	s.mu.Unlock()
}

// sync makes every write so far durable: Badger's WAL and value log are
// fsynced. It is a no-op in memory.
func (s *Store) sync() error {
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// ttl is the retention TTL applied to evidence entries; zero means none.
func (s *Store) ttl() time.Duration { return s.cfg.Retention }

// entry builds a Badger entry with TTL d (none when d <= 0).
func entry(key, val []byte, d time.Duration) *badger.Entry {
	e := badger.NewEntry(key, val)
	if d > 0 {
		e = e.WithTTL(d)
	}
	return e
}

// Size reports Badger's on-disk size of the LSM tree and the value log in
// bytes, as last measured by Badger (it refreshes about once a minute);
// zero after Close. It is meant for status views.
func (s *Store) Size() (lsm, vlog int64) {
	if err := s.enter(); err != nil {
		return 0, 0
	}
	defer s.leave()
	return s.db.Size()
}

// update runs fn in a read-write transaction, retrying on conflicts.
func (s *Store) update(fn func(txn *badger.Txn) error) error {
	const attempts = 10
	var err error
	for range attempts {
		err = s.db.Update(fn)
		if !errors.Is(err, badger.ErrConflict) {
			return err
		}
	}
	return err
}
