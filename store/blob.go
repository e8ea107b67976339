package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// BlobChunkSize is the size of the pieces a blob is stored in. Each piece
// is one value-log entry keyed by its own SHA-256, so equal pieces of
// different blobs are stored once.
const BlobChunkSize = 512 << 10

// manifestVersion is the first byte of a blob manifest.
const manifestVersion = 1

// PutBlob reads r to the end, storing it in BlobChunkSize pieces, and
// returns the lower-case hex SHA-256 of the whole and its size once it is
// durable. It fails with ErrBlobTooLarge past Config.MaxBlobBytes, and then
// removes the pieces it added. It implements collectors.BlobSink.
func (s *Store) PutBlob(r io.Reader) (sha256hex string, size int64, err error) {
	if err := s.enter(); err != nil {
		return "", 0, fmt.Errorf("put blob: %w", err)
	}
	defer s.leave()

	// Pieces this call created, removed again if the call fails; pieces
	// that already existed may belong to another blob and are left alone.
	var added [][]byte
	defer func() {
		if err != nil {
			s.dropChunks(added)
		}
	}()

	whole := sha256.New()
	var chunks [][sha256.Size]byte
	buf := make([]byte, BlobChunkSize)
	ttl := s.ttl()
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			size += int64(n)
			if size > s.cfg.MaxBlobBytes {
				return "", 0, fmt.Errorf("put blob: over %d bytes: %w",
					s.cfg.MaxBlobBytes, ErrBlobTooLarge)
			}
			piece := buf[:n]
			whole.Write(piece)
			sum := sha256.Sum256(piece)
			chunks = append(chunks, sum)
			key := primaryKey(prefixBlobChunk, sum[:])
			isNew, err := s.putChunk(key, piece, ttl)
			if err != nil {
				return "", 0, fmt.Errorf("put blob: %w", err)
			}
			if isNew {
				added = append(added, key)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return "", 0, fmt.Errorf("put blob: read: %w", rerr)
		}
	}

	// The manifest names the pieces in order; writing it last means a
	// blob is never visible before all its pieces are.
	var sum [sha256.Size]byte
	whole.Sum(sum[:0])
	man := encodeManifest(size, chunks)
	mkey := primaryKey(prefixBlobManifst, sum[:])
	err = s.update(func(txn *badger.Txn) error { return txn.SetEntry(entry(mkey, man, ttl)) })
	if err == nil {
		err = s.sync()
	}
	if err != nil {
		return "", 0, fmt.Errorf("put blob: %w", err)
	}
	return hex.EncodeToString(sum[:]), size, nil
}

// putChunk writes one piece and reports whether it was absent before.
// Existing pieces are rewritten too, which renews their TTL.
func (s *Store) putChunk(key, piece []byte, ttl time.Duration) (bool, error) {
	isNew := false
	err := s.update(func(txn *badger.Txn) error {
		_, err := txn.Get(key)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			isNew = true
		case err != nil:
			return err
		}
		return txn.SetEntry(entry(key, piece, ttl))
	})
	return isNew, err
}

// dropChunks deletes pieces left by a failed PutBlob, best effort.
func (s *Store) dropChunks(keys [][]byte) {
	if len(keys) == 0 {
		return
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			s.cfg.Logger.Warn("drop blob pieces", "err", err)
			return
		}
	}
	if err := wb.Flush(); err != nil {
		s.cfg.Logger.Warn("drop blob pieces", "err", err)
	}
}

// GetBlob writes the blob with the given hex SHA-256 to w. Each piece is
// verified against its hash before it is written, and the whole against
// hash at the end. An unknown hash fails with ErrNotFound, a malformed one
// with ErrBadHash.
func (s *Store) GetBlob(hash string, w io.Writer) error {
	want, err := parseHash(hash)
	if err != nil {
		return fmt.Errorf("get blob %q: %w", hash, err)
	}
	size, chunks, err := s.manifest(want)
	if err != nil {
		return fmt.Errorf("get blob %s: %w", hash, err)
	}

	whole := sha256.New()
	var written int64
	for i, c := range chunks {
		piece, err := s.get(string(primaryKey(prefixBlobChunk, c[:])))
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("get blob %s: piece %d missing: %w", hash, i, ErrCorrupt)
		}
		if err != nil {
			return fmt.Errorf("get blob %s: %w", hash, err)
		}
		if sha256.Sum256(piece) != c {
			return fmt.Errorf("get blob %s: piece %d hash: %w", hash, i, ErrCorrupt)
		}
		whole.Write(piece)
		if _, err := w.Write(piece); err != nil {
			return fmt.Errorf("get blob %s: write: %w", hash, err)
		}
		written += int64(len(piece))
	}
	if written != size || !bytes.Equal(whole.Sum(nil), want[:]) {
		return fmt.Errorf("get blob %s: content does not match hash: %w", hash, ErrCorrupt)
	}
	return nil
}

// BlobSize returns the size of the stored blob hash, or ErrNotFound.
func (s *Store) BlobSize(hash string) (int64, error) {
	want, err := parseHash(hash)
	if err != nil {
		return 0, fmt.Errorf("blob size %q: %w", hash, err)
	}
	size, _, err := s.manifest(want)
	if err != nil {
		return 0, fmt.Errorf("blob size %s: %w", hash, err)
	}
	return size, nil
}

// manifest reads and decodes the manifest of blob sum.
func (s *Store) manifest(sum [sha256.Size]byte) (int64, [][sha256.Size]byte, error) {
	val, err := s.get(string(primaryKey(prefixBlobManifst, sum[:])))
	if err != nil {
		return 0, nil, err
	}
	return decodeManifest(val)
}

// parseHash checks and decodes a lower-case hex SHA-256.
func parseHash(hash string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	if len(hash) != 2*sha256.Size {
		return sum, ErrBadHash
	}
	for _, c := range []byte(hash) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return sum, ErrBadHash
		}
	}
	if _, err := hex.Decode(sum[:], []byte(hash)); err != nil {
		return sum, ErrBadHash
	}
	return sum, nil
}

// encodeManifest is version, uvarint size, uvarint count, then the piece
// hashes.
func encodeManifest(size int64, chunks [][sha256.Size]byte) []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(chunks)*sha256.Size)
	b = append(b, manifestVersion)
	b = binary.AppendUvarint(b, uint64(size))
	b = binary.AppendUvarint(b, uint64(len(chunks)))
	for _, c := range chunks {
		b = append(b, c[:]...)
	}
	return b
}

// decodeManifest parses a manifest, rejecting any inconsistency between
// size, count and length.
func decodeManifest(b []byte) (int64, [][sha256.Size]byte, error) {
	bad := fmt.Errorf("blob manifest: %w", ErrCorrupt)
	if len(b) == 0 || b[0] != manifestVersion {
		return 0, nil, bad
	}
	b = b[1:]
	size, n := binary.Uvarint(b)
	if n <= 0 || size > 1<<62 {
		return 0, nil, bad
	}
	b = b[n:]
	count, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, nil, bad
	}
	b = b[n:]
	if count != uint64(len(b)/sha256.Size) || len(b)%sha256.Size != 0 {
		return 0, nil, bad
	}
	// Every piece but the last is full, and the last is not empty.
	if count == 0 && size != 0 ||
		count > 0 && (size <= (count-1)*BlobChunkSize || size > count*BlobChunkSize) {
		return 0, nil, bad
	}
	chunks := make([][sha256.Size]byte, count)
	for i := range chunks {
		copy(chunks[i][:], b[i*sha256.Size:])
	}
	return int64(size), chunks, nil
}
