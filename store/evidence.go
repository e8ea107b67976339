package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/huntmesh/huntmesh/tasks"
)

// Filter selects stored records or detections. Zero fields do not filter.
type Filter struct {
	// TaskID keeps rows stored under this task; the scan then walks the
	// task index instead of the whole time range.
	TaskID string

	// Kind keeps rows of this record kind (for detections, the kind of
	// the matching record).
	Kind string

	// Host keeps rows collected on this host.
	Host string

	// Since (inclusive) and Until (exclusive) bound the event time.
	Since, Until time.Time

	// Limit stops the scan after this many rows; zero means no limit.
	Limit int
}

// ctxCheckEvery is how many keys a scan visits between context checks.
const ctxCheckEvery = 1024

// PutRecords stores recs under taskID ("" for records gathered outside a
// task) and returns once they are durable. Either all records are encoded
// and written, or the call fails before writing anything on bad input.
func (s *Store) PutRecords(taskID string, recs []tasks.Record) error {
	return s.putEvidence("put records", prefixRecord, prefixRecordTask, taskID, len(recs),
		func(i int) (time.Time, header, any) {
			r := &recs[i]
			return r.Time, header{taskID: taskID, kind: r.Kind, host: r.Host}, r
		})
}

// PutDetections stores dets under taskID and returns once they are durable.
// A detection with an empty TaskID is stored with taskID filled in.
func (s *Store) PutDetections(taskID string, dets []tasks.Detection) error {
	return s.putEvidence("put detections", prefixDetection, prefixDetectTask, taskID,
		len(dets), func(i int) (time.Time, header, any) {
			d := dets[i]
			if d.TaskID == "" {
				d.TaskID = taskID
			}
			return d.Time, header{taskID: taskID, kind: d.Record.Kind, host: d.Host}, &d
		})
}

// putEvidence encodes n rows given by row, then writes them with their
// task index entries in one WriteBatch and syncs.
func (s *Store) putEvidence(op, primary, index, taskID string, n int,
	row func(i int) (time.Time, header, any)) error {
	if n == 0 {
		return nil
	}
	if taskID != "" {
		if err := checkID("task id", taskID); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	if err := s.enter(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer s.leave()

	// Encode everything first so bad input writes nothing.
	type kv struct{ suffix, val []byte }
	rows := make([]kv, n)
	for i := range n {
		t, h, v := row(i)
		val, err := encodeValue(h, v)
		if err != nil {
			return fmt.Errorf("%s: row %d: %w", op, i, err)
		}
		seq, err := s.seq.Next()
		if err != nil {
			return fmt.Errorf("%s: sequence: %w", op, err)
		}
		rows[i] = kv{evidenceSuffix(t, seq), val}
	}

	// Write primary and index entries together, then make them durable.
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	ttl := s.ttl()
	var ix []byte
	if taskID != "" {
		ix = taskIndexPrefix(index, taskID)
	}
	for _, r := range rows {
		if err := wb.SetEntry(entry(primaryKey(primary, r.suffix), r.val, ttl)); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if ix == nil {
			continue
		}
		key := append(bytes.Clone(ix), r.suffix...)
		if err := wb.SetEntry(entry(key, nil, ttl)); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := s.sync(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// Records calls fn for each stored record that f selects, in event-time
// order, inside one read snapshot. A time range or a task ID makes the scan
// touch only the matching key range. fn may return ErrStop to end early;
// any other error ends the scan and is returned. fn may call other Store
// methods but not Close.
func (s *Store) Records(ctx context.Context, f Filter, fn func(tasks.Record) error) error {
	err := s.scan(ctx, f, prefixRecord, prefixRecordTask, func(val []byte) error {
		r, err := decodeRecord(val)
		if err != nil {
			return err
		}
		return fn(r)
	})
	if err != nil {
		return fmt.Errorf("scan records: %w", err)
	}
	return nil
}

// Detections calls fn for each stored detection that f selects, in
// event-time order; it behaves as Records does.
func (s *Store) Detections(ctx context.Context, f Filter,
	fn func(tasks.Detection) error) error {
	err := s.scan(ctx, f, prefixDetection, prefixDetectTask, func(val []byte) error {
		d, err := decodeDetection(val)
		if err != nil {
			return err
		}
		return fn(d)
	})
	if err != nil {
		return fmt.Errorf("scan detections: %w", err)
	}
	return nil
}

// scan walks the primary keyspace, or a task's index when f.TaskID is set,
// over f's time range, and hands each value that passes the header filters
// to visit. ErrStop from visit ends the scan with nil.
func (s *Store) scan(ctx context.Context, f Filter, primary, index string,
	visit func(val []byte) error) error {
	if f.TaskID != "" {
		if err := checkID("task id", f.TaskID); err != nil {
			return err
		}
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()

	// The walked prefix: every primary key, or one task's index entries;
	// either way the 16-byte suffix after it orders by time.
	prefix := []byte(primary)
	if f.TaskID != "" {
		prefix = taskIndexPrefix(index, f.TaskID)
	}
	start := prefix
	if !f.Since.IsZero() {
		start = binary.BigEndian.AppendUint64(bytes.Clone(prefix), timeKey(f.Since))
	}
	var until uint64
	bounded := !f.Until.IsZero()
	if bounded {
		until = timeKey(f.Until)
	}

	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefix
		opts.PrefetchValues = f.TaskID == ""
		it := txn.NewIterator(opts)
		defer it.Close()

		rows, visited := 0, 0
		for it.Seek(start); it.ValidForPrefix(prefix); it.Next() {
			visited++
			if visited%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			key := it.Item().Key()
			if len(key) != len(prefix)+suffixLen {
				continue
			}
			suffix := key[len(prefix):]
			if bounded && binary.BigEndian.Uint64(suffix) >= until {
				break
			}

			item := it.Item()
			if f.TaskID != "" {
				var err error
				item, err = txn.Get(primaryKey(primary, suffix))
				if errors.Is(err, badger.ErrKeyNotFound) {
					continue // dropped by the size cap; the index lags
				}
				if err != nil {
					return err
				}
			}
			matched := false
			err := item.Value(func(val []byte) error {
				h, _, err := decodeHeader(val)
				if err != nil {
					return err
				}
				if (f.Kind != "" && h.kind != f.Kind) || (f.Host != "" && h.host != f.Host) {
					return nil
				}
				matched = true
				return visit(val)
			})
			if err != nil {
				return err
			}
			if matched {
				rows++
				if f.Limit > 0 && rows >= f.Limit {
					return nil
				}
			}
		}
		return ctx.Err()
	})
	if errors.Is(err, ErrStop) {
		return nil
	}
	return err
}
