package store

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// gcDiscardRatio is the share of stale data a value-log file must hold
// before GC rewrites it: half, Badger's recommendation.
const gcDiscardRatio = 0.5

// maxGCRewrites bounds the files one GC pass rewrites, so a pass stays
// short and the next tick continues.
const maxGCRewrites = 16

// dropBatch is how many rows the size cap deletes per write batch.
const dropBatch = 10000

// capLowWater is the share of MaxSizeBytes the cap trims down to, so that
// a store at its cap is not trimmed again on every tick.
const capLowWater = 0.9

// maintain runs value-log GC and the size cap on the GC timer until Close.
func (s *Store) maintain() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.maintainOnce()
		}
	}
}

// maintainOnce is one timer tick: GC, then the size cap.
func (s *Store) maintainOnce() {
	if err := s.enter(); err != nil {
		return
	}
	defer s.leave()
	s.runGC()
	if _, err := s.enforceSizeCap(false); err != nil {
		s.cfg.Logger.Error("store size cap", "err", err)
	}
}

// runGC rewrites value-log files until Badger finds none worth it.
func (s *Store) runGC() {
	if s.cfg.InMemory {
		return
	}
	start := time.Now()
	rewrites := 0
	for rewrites < maxGCRewrites {
		err := s.db.RunValueLogGC(gcDiscardRatio)
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			break
		}
		if err != nil {
			s.cfg.Logger.Warn("store value-log gc", "err", err)
			break
		}
		rewrites++
	}
	s.cfg.Logger.Debug("store value-log gc", "rewrites", rewrites, "dur", time.Since(start))
}

// enforceSizeCap trims the store when its live data exceeds MaxSizeBytes:
// it deletes the oldest records by event time, then the oldest detections,
// until the live size is under capLowWater of the cap. Unless force is set
// it first checks Badger's on-disk size, which is cheap, and does nothing
// while that is under the cap. It returns the number of rows deleted.
func (s *Store) enforceSizeCap(force bool) (int, error) {
	limit := s.cfg.MaxSizeBytes
	if limit == 0 {
		return 0, nil
	}
	if !force {
		if lsm, vlog := s.db.Size(); lsm+vlog <= limit {
			return 0, nil
		}
	}
	start := time.Now()

	live, err := s.liveBytes()
	if err != nil {
		return 0, fmt.Errorf("measure live size: %w", err)
	}
	if live <= limit {
		return 0, nil
	}
	excess := live - int64(float64(limit)*capLowWater)

	dropped := 0
	for _, ks := range [][2]string{
		{prefixRecord, prefixRecordTask},
		{prefixDetection, prefixDetectTask},
	} {
		n, freed, err := s.dropOldest(ks[0], ks[1], excess)
		dropped += n
		if err != nil {
			return dropped, err
		}
		excess -= freed
		if excess <= 0 {
			break
		}
	}
	if err := s.sync(); err != nil {
		return dropped, err
	}
	s.cfg.Logger.Info("store size cap enforced", "dropped", dropped, "live", live,
		"cap", limit, "dur", time.Since(start))
	return dropped, nil
}

// liveBytes estimates the live data by a key-only scan of every keyspace;
// deleted and expired entries are not visited, so it drops as soon as rows
// are deleted, unlike the on-disk size, which waits for compaction.
func (s *Store) liveBytes() (int64, error) {
	var total int64
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			total += it.Item().EstimatedSize()
		}
		return nil
	})
	return total, err
}

// dropOldest deletes rows of one evidence keyspace, oldest first, with
// their task index entries, until want bytes are freed or none are left.
func (s *Store) dropOldest(primary, index string, want int64) (int, int64, error) {
	dropped := 0
	var freed int64
	for freed < want {
		var keys [][]byte
		err := s.db.View(func(txn *badger.Txn) error {
			opts := badger.DefaultIteratorOptions
			opts.Prefix = []byte(primary)
			it := txn.NewIterator(opts)
			defer it.Close()
			for it.Rewind(); it.Valid() && freed < want && len(keys) < dropBatch; it.Next() {
				item := it.Item()
				key := item.KeyCopy(nil)
				keys = append(keys, key)
				freed += item.EstimatedSize()

				// The index entry is found through the task ID in the value.
				err := item.Value(func(val []byte) error {
					h, _, err := decodeHeader(val)
					if err != nil || h.taskID == "" {
						return nil // a corrupt row is still dropped
					}
					ix := append(taskIndexPrefix(index, h.taskID), key[len(primary):]...)
					keys = append(keys, ix)
					freed += int64(len(ix))
					return nil
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return dropped, freed, err
		}
		if len(keys) == 0 {
			break
		}
		if err := s.deleteKeys(keys); err != nil {
			return dropped, freed, err
		}
		for _, k := range keys {
			if bytes.HasPrefix(k, []byte(primary)) {
				dropped++
			}
		}
	}
	return dropped, freed, nil
}

// deleteKeys removes keys in one write batch.
func (s *Store) deleteKeys(keys [][]byte) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			return err
		}
	}
	return wb.Flush()
}
