package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/huntmesh/huntmesh/tasks"
)

// StoredTask is a task envelope a node keeps: to answer catch-up requests
// for still-valid tasks, and to show what it ran or issued.
type StoredTask struct {
	// ID is the task ID (a ULID, so key order is issue order).
	ID string `json:"id"`

	// Type is the task type (tasks.TypeHunt ...).
	Type string `json:"type"`

	// NotAfter is the task's deadline; the task is active before it.
	NotAfter time.Time `json:"not_after"`

	// Envelope is the signed envelope exactly as received or sent.
	Envelope []byte `json:"envelope"`

	// Issued is true when this node issued the task.
	Issued bool `json:"issued,omitempty"`

	// Held marks a task kept only so that its answers are accepted: a
	// forwarded hunt that waits for its chained rule to trigger. Catch-up
	// does not offer it to peers.
	Held bool `json:"held,omitempty"`
}

// MarkSeen records taskID as seen and reports whether it was new. It is
// atomic: among concurrent calls for one ID exactly one gets true, and the
// mark survives restarts until SeenGrace past notAfter. A zero notAfter
// keeps the mark for the retention period (forever when that is zero).
func (s *Store) MarkSeen(taskID string, notAfter time.Time) (fresh bool, err error) {
	if err := checkID("task id", taskID); err != nil {
		return false, fmt.Errorf("mark seen: %w", err)
	}
	if err := s.enter(); err != nil {
		return false, fmt.Errorf("mark seen: %w", err)
	}
	defer s.leave()

	key := []byte(prefixSeen + taskID)
	val := binary.BigEndian.AppendUint64(nil, timeKey(notAfter))
	ttl := s.ttl()
	if !notAfter.IsZero() {
		ttl = max(time.Until(notAfter)+SeenGrace, SeenGrace)
	}

	// Conflict detection makes the read-then-write atomic: a concurrent
	// writer of the same key fails to commit, retries, and sees the mark.
	err = s.update(func(txn *badger.Txn) error {
		fresh = false
		_, err := txn.Get(key)
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		fresh = true
		return txn.SetEntry(entry(key, val, ttl))
	})
	if err != nil {
		return false, fmt.Errorf("mark seen %s: %w", taskID, err)
	}
	if fresh {
		if err := s.sync(); err != nil {
			return false, fmt.Errorf("mark seen %s: %w", taskID, err)
		}
	}
	return fresh, nil
}

// Seen reports whether taskID was marked seen and the mark has not expired.
func (s *Store) Seen(taskID string) (bool, error) {
	if err := checkID("task id", taskID); err != nil {
		return false, fmt.Errorf("seen: %w", err)
	}
	_, err := s.get(prefixSeen + taskID)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("seen %s: %w", taskID, err)
}

// PutTask stores t durably, replacing any earlier copy. It is kept until
// the later of its NotAfter and the retention period.
func (s *Store) PutTask(t StoredTask) error {
	if err := checkID("task id", t.ID); err != nil {
		return fmt.Errorf("put task: %w", err)
	}
	val, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("put task %s: %w", t.ID, err)
	}
	ttl := s.ttl()
	if ttl > 0 {
		ttl = max(ttl, time.Until(t.NotAfter))
	}
	if err := s.put(entry([]byte(prefixTask+t.ID), val, ttl)); err != nil {
		return fmt.Errorf("put task %s: %w", t.ID, err)
	}
	return nil
}

// Task returns the stored task id; ok is false when there is none.
func (s *Store) Task(id string) (StoredTask, bool, error) {
	var t StoredTask
	if err := checkID("task id", id); err != nil {
		return t, false, fmt.Errorf("get task: %w", err)
	}
	val, err := s.get(prefixTask + id)
	if errors.Is(err, ErrNotFound) {
		return t, false, nil
	}
	if err == nil {
		err = decodeJSON(val, &t)
	}
	if err != nil {
		return t, false, fmt.Errorf("get task %s: %w", id, err)
	}
	return t, true, nil
}

// ActiveTasks returns the stored tasks whose NotAfter is after now, in ID
// order (issue order for ULIDs).
func (s *Store) ActiveTasks(now time.Time) ([]StoredTask, error) {
	var out []StoredTask
	err := s.each([]byte(prefixTask), func(_, val []byte) error {
		var t StoredTask
		if err := decodeJSON(val, &t); err != nil {
			return err
		}
		if t.NotAfter.After(now) {
			out = append(out, t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("active tasks: %w", err)
	}
	return out, nil
}

// PutResult stores one part of a node's answer durably under task, node
// and sequence number. Storing the same part again replaces it, so
// redelivery is harmless.
func (s *Store) PutResult(r tasks.Result) error {
	if err := checkID("task id", r.TaskID); err != nil {
		return fmt.Errorf("put result: %w", err)
	}
	if err := checkID("node id", r.Node); err != nil {
		return fmt.Errorf("put result: %w", err)
	}
	if r.Seq < 0 {
		return fmt.Errorf("put result: negative seq %d: %w", r.Seq, ErrInvalid)
	}
	val, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("put result %s: %w", r.TaskID, err)
	}
	if err := s.put(entry(resultKey(r.TaskID, r.Node, r.Seq), val, s.ttl())); err != nil {
		return fmt.Errorf("put result %s: %w", r.TaskID, err)
	}
	return nil
}

// Results returns every stored result part of taskID, ordered by node ID
// and then sequence number.
func (s *Store) Results(taskID string) ([]tasks.Result, error) {
	if err := checkID("task id", taskID); err != nil {
		return nil, fmt.Errorf("results: %w", err)
	}
	var out []tasks.Result
	err := s.each(resultPrefix(taskID), func(_, val []byte) error {
		r, err := decodeResult(val)
		if err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("results %s: %w", taskID, err)
	}
	return out, nil
}

// PutMeta stores val under key durably and without TTL; it is the intel
// package's state.
func (s *Store) PutMeta(key string, val []byte) error {
	if err := checkID("meta key", key); err != nil {
		return fmt.Errorf("put meta: %w", err)
	}
	if err := s.put(entry([]byte(prefixMeta+key), val, 0)); err != nil {
		return fmt.Errorf("put meta %s: %w", key, err)
	}
	return nil
}

// GetMeta returns the value stored under key; ok is false when absent.
func (s *Store) GetMeta(key string) ([]byte, bool, error) {
	if err := checkID("meta key", key); err != nil {
		return nil, false, fmt.Errorf("get meta: %w", err)
	}
	val, err := s.get(prefixMeta + key)
	switch {
	case err == nil:
		return val, true, nil
	case errors.Is(err, ErrNotFound):
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("get meta %s: %w", key, err)
}

// put writes one entry and syncs.
func (s *Store) put(e *badger.Entry) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if err := s.update(func(txn *badger.Txn) error { return txn.SetEntry(e) }); err != nil {
		return err
	}
	return s.sync()
}

// get returns a copy of the value under key, or ErrNotFound.
func (s *Store) get(key string) ([]byte, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var val []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(key))
		if err != nil {
			return err
		}
		val, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	return val, err
}

// each calls fn with every key and value under prefix, in key order. The
// slices are only valid during the call.
func (s *Store) each(prefix []byte, fn func(key, val []byte) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			err := item.Value(func(val []byte) error { return fn(item.Key(), val) })
			if err != nil {
				return err
			}
		}
		return nil
	})
}
