package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
)

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// countKeys counts live keys under prefix.
func countKeys(t *testing.T, s *Store, prefix string) int {
	t.Helper()
	n := 0
	if err := s.each([]byte(prefix), func(_, _ []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBlobRoundTrip(t *testing.T) {
	s, cfg := openTest(t, nil)
	cases := []struct {
		name   string
		data   []byte
		pieces int
	}{
		{"empty", nil, 0},
		{"small", []byte("stratum+tcp://pool.example:3333"), 1},
		{"exactly one piece", randomBytes(BlobChunkSize, 1), 1},
		{"larger than a piece", randomBytes(BlobChunkSize*2+12345, 2), 3},
	}
	hashes := map[string][]byte{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := countKeys(t, s, prefixBlobChunk)
			hash, size, err := s.PutBlob(bytes.NewReader(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(tc.data)
			if hash != hex.EncodeToString(sum[:]) || size != int64(len(tc.data)) {
				t.Errorf("PutBlob = %s, %d", hash, size)
			}
			if added := countKeys(t, s, prefixBlobChunk) - before; added != tc.pieces {
				t.Errorf("%d pieces stored, want %d", added, tc.pieces)
			}
			var out bytes.Buffer
			if err := s.GetBlob(hash, &out); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), tc.data) {
				t.Errorf("GetBlob returned %d bytes, want %d", out.Len(), len(tc.data))
			}
			hashes[hash] = tc.data
		})
	}

	// Storing the same bytes again adds nothing and gives the same hash.
	t.Run("dedup", func(t *testing.T) {
		before := countKeys(t, s, prefixBlobChunk)
		data := randomBytes(BlobChunkSize*2+12345, 2)
		if _, _, err := s.PutBlob(bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		if after := countKeys(t, s, prefixBlobChunk); after != before {
			t.Errorf("pieces %d -> %d", before, after)
		}
	})

	s = reopen(t, s, cfg)
	t.Run("after reopen", func(t *testing.T) {
		for hash, data := range hashes {
			var out bytes.Buffer
			if err := s.GetBlob(hash, &out); err != nil || !bytes.Equal(out.Bytes(), data) {
				t.Errorf("GetBlob(%s): %v", hash, err)
			}
			if n, err := s.BlobSize(hash); err != nil || n != int64(len(data)) {
				t.Errorf("BlobSize(%s) = %d, %v", hash, n, err)
			}
		}
	})
}

func TestBlobErrors(t *testing.T) {
	s, _ := openTest(t, func(c *Config) { c.MaxBlobBytes = BlobChunkSize + 10 })

	unknown := strings.Repeat("ab", 32)
	cases := []struct {
		name string
		hash string
		want error
	}{
		{"unknown hash", unknown, ErrNotFound},
		{"short", "abc", ErrBadHash},
		{"upper case", strings.ToUpper(unknown), ErrBadHash},
		{"not hex", strings.Repeat("zz", 32), ErrBadHash},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := s.GetBlob(tc.hash, &out)
			if !errors.Is(err, tc.want) || out.Len() != 0 {
				t.Errorf("GetBlob: %v (%d bytes), want %v", err, out.Len(), tc.want)
			}
			if err != nil && tc.want == ErrNotFound && !strings.Contains(err.Error(), tc.hash) {
				t.Errorf("error %q does not name the hash", err)
			}
		})
	}

	t.Run("too large leaves nothing", func(t *testing.T) {
		_, _, err := s.PutBlob(bytes.NewReader(randomBytes(BlobChunkSize*3, 3)))
		if !errors.Is(err, ErrBlobTooLarge) {
			t.Fatalf("PutBlob: %v, want ErrBlobTooLarge", err)
		}
		if n := countKeys(t, s, prefixBlobChunk); n != 0 {
			t.Errorf("%d pieces left behind", n)
		}
	})

	t.Run("corrupt piece", func(t *testing.T) {
		data := randomBytes(BlobChunkSize+5, 4)
		hash, _, err := s.PutBlob(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		first := sha256.Sum256(data[:BlobChunkSize])
		err = s.db.Update(func(txn *badger.Txn) error {
			return txn.Set(primaryKey(prefixBlobChunk, first[:]), []byte("tampered"))
		})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := s.GetBlob(hash, &out); !errors.Is(err, ErrCorrupt) || out.Len() != 0 {
			t.Errorf("GetBlob: %v (%d bytes written), want ErrCorrupt and nothing", err, out.Len())
		}
	})
}
