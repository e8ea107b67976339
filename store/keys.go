package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"
)

// Key prefixes. Each keyspace starts with a short ASCII tag and a slash so
// that a prefix scan of one never touches another (no tag is a prefix of
// another tag followed by '/'). doc.go explains the layout.
const (
	prefixRecord      = "rec/"  // rec/<time 8><seq 8> -> record value
	prefixRecordTask  = "rix/"  // rix/<task>\x00<time 8><seq 8> -> empty
	prefixDetection   = "det/"  // det/<time 8><seq 8> -> detection value
	prefixDetectTask  = "dix/"  // dix/<task>\x00<time 8><seq 8> -> empty
	prefixSeen        = "seen/" // seen/<task> -> not-after, TTL past it
	prefixTask        = "task/" // task/<task> -> StoredTask JSON
	prefixResult      = "res/"  // res/<task>\x00<node>\x00<seq 8> -> Result JSON
	prefixBlobChunk   = "bch/"  // bch/<chunk sha256 32> -> chunk bytes
	prefixBlobManifst = "bman/" // bman/<blob sha256 32> -> manifest
	prefixMeta        = "meta/" // meta/<key> -> opaque bytes
	keySequence       = "seq/evidence"
)

// suffixLen is the length of the time-and-sequence suffix shared by a
// primary evidence key and its task index entry.
const suffixLen = 16

// maxIDLen bounds task IDs, node IDs and meta keys used in keys.
const maxIDLen = 256

// checkID rejects identifiers that cannot be used as a key component.
func checkID(what, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%s is empty: %w", what, ErrInvalid)
	case len(id) > maxIDLen:
		return fmt.Errorf("%s longer than %d bytes: %w", what, maxIDLen, ErrInvalid)
	case strings.IndexByte(id, 0) >= 0:
		return fmt.Errorf("%s contains a NUL byte: %w", what, ErrInvalid)
	}
	return nil
}

// Bounds of time.UnixNano: outside them it overflows, so times are clamped.
var (
	minKeyTime = time.Unix(0, math.MinInt64)
	maxKeyTime = time.Unix(0, math.MaxInt64)
)

// timeKey encodes t so that byte order is time order: Unix nanoseconds with
// the sign bit flipped, big-endian. Times before 1678 or after 2262 (and the
// zero time) clamp to the ends of the range.
func timeKey(t time.Time) uint64 {
	switch {
	case t.Before(minKeyTime):
		return 0
	case t.After(maxKeyTime):
		return math.MaxUint64
	}
	return uint64(t.UnixNano()) ^ (1 << 63)
}

// evidenceSuffix is <time 8><seq 8>.
func evidenceSuffix(t time.Time, seq uint64) []byte {
	b := make([]byte, suffixLen)
	binary.BigEndian.PutUint64(b, timeKey(t))
	binary.BigEndian.PutUint64(b[8:], seq)
	return b
}

// primaryKey is prefix + suffix.
func primaryKey(prefix string, suffix []byte) []byte {
	k := make([]byte, 0, len(prefix)+len(suffix))
	return append(append(k, prefix...), suffix...)
}

// taskIndexPrefix is <prefix><task>\x00, the start of one task's index.
func taskIndexPrefix(prefix, taskID string) []byte {
	k := make([]byte, 0, len(prefix)+len(taskID)+1+suffixLen)
	k = append(k, prefix...)
	k = append(k, taskID...)
	return append(k, 0)
}

// resultKey is res/<task>\x00<node>\x00<seq 8>.
func resultKey(taskID, node string, seq int) []byte {
	k := append(resultPrefix(taskID), node...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, uint64(seq))
}

// resultPrefix is res/<task>\x00.
func resultPrefix(taskID string) []byte {
	return taskIndexPrefix(prefixResult, taskID)
}
