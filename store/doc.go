// Package store keeps a node's evidence in Badger: records, detections,
// the tasks it has seen and kept, results, blobs and the intel package's
// state. It knows nothing of the mesh; node hands it what to keep.
//
// # Durability
//
// Every write method returns only after Badger's write-ahead log and value
// log are fsynced (one explicit Sync per call rather than SyncWrites, so a
// batch of records costs one fsync). A result that reports rows as stored
// may therefore rely on them surviving kill -9 and power loss.
//
// # Key layout
//
// Each keyspace starts with a short tag and a slash. Times in keys are Unix
// nanoseconds with the sign bit flipped, big-endian, so byte order is time
// order; seq is a store-wide counter (a Badger sequence) that makes keys
// unique when events share a nanosecond.
//
//	rec/<time 8><seq 8>                   record value
//	rix/<task>\x00<time 8><seq 8>         empty: record index by task
//	det/<time 8><seq 8>                   detection value
//	dix/<task>\x00<time 8><seq 8>         empty: detection index by task
//	seen/<task>                           not-after of a seen task
//	task/<task>                           StoredTask (JSON)
//	res/<task>\x00<node>\x00<seq 8>       Result (JSON)
//	bman/<sha256 32>                      blob manifest: size, piece hashes
//	bch/<sha256 32>                       one blob piece, keyed by its hash
//	meta/<key>                            intel state, opaque
//
// Records are keyed by event time first because most reads are time
// bounded: a timeline, a CEL query with a time range, re-matching recent
// evidence when the intel set changes, and the size cap dropping the
// oldest rows. A time range is then one seek and a forward scan that stops
// at the end of the range. Per-task reads ("what did task X find here")
// walk the secondary index, whose entries carry the same time-and-seq
// suffix: a task's rows come back in time order, a task plus a time range
// is again one seek, and the primary key is the index key with its prefix
// swapped, so the index needs no value. The reverse layout (task first)
// would make every time-range query a full scan, since most evidence is
// ingested or collected under many tasks.
//
// A record or detection value is a version byte, the task ID, kind and
// host as length-prefixed strings, then the JSON body. Kind and host
// filters and the size cap read the header without decoding JSON. Decoding
// keeps whole numbers as int64 and lists of strings as []string, the types
// collectors emit, so a record reads back as it was written (a float that
// happens to be whole reads back as int64).
//
// # Retention and size
//
// Records, detections, results, stored tasks and blobs carry a Badger TTL
// of Config.Retention (tasks at least until their NotAfter); seen marks
// expire SeenGrace after the task's NotAfter, when the expiry rule refuses
// a replay anyway. Meta has no TTL. Expired entries vanish from reads at
// once; their space returns through compaction and value-log GC, which a
// goroutine runs every Config.GCInterval until Close.
//
// Config.MaxSizeBytes is enforced on the same timer, best effort: when
// Badger's on-disk size (refreshed by Badger about once a minute) is over
// the cap, a key-only scan measures the live data; if that is over the cap
// too, the oldest records by event time are deleted, then the oldest
// detections, until the live data is under 90% of the cap. Deleted space
// returns to the disk only after compaction, so the disk can stay over the
// cap for a while. Blobs, results, tasks and meta count towards the cap but
// are only removed by their TTL.
//
// # Blobs
//
// PutBlob streams its input in BlobChunkSize pieces, each stored under its
// own SHA-256 (so pieces shared by blobs are stored once), then writes a
// manifest under the SHA-256 of the whole. GetBlob verifies every piece
// before writing it out, and the whole at the end.
package store
