package store

import (
	"crypto/sha256"
	"slices"
	"testing"

	"github.com/huntmesh/huntmesh/tasks"
)

// FuzzDecodeValue feeds arbitrary bytes to the record and detection value
// decoders, which read what is on disk: they must fail cleanly, never
// panic, and a decoded header must lie within the input.
func FuzzDecodeValue(f *testing.F) {
	rec := sampleRecord(1)
	good, err := encodeValue(header{taskID: "T", kind: rec.Kind, host: rec.Host}, &rec)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{valueVersion})
	f.Add([]byte{valueVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Add([]byte{valueVersion, 0, 0, 0, '{', '}'})
	f.Fuzz(func(t *testing.T, val []byte) {
		h, body, err := decodeHeader(val)
		if err == nil && len(h.taskID)+len(h.kind)+len(h.host)+len(body) > len(val) {
			t.Fatalf("header overruns its input")
		}
		_, _ = decodeRecord(val)
		_, _ = decodeDetection(val)
		_, _ = decodeResult(val)
	})
}

// FuzzDecodeManifest checks that a manifest that decodes is consistent: its
// piece count matches its size, and re-encoding it decodes to the same.
func FuzzDecodeManifest(f *testing.F) {
	f.Add(encodeManifest(0, nil))
	f.Add(encodeManifest(10, [][sha256.Size]byte{{1}}))
	f.Add(encodeManifest(BlobChunkSize+1, [][sha256.Size]byte{{1}, {2}}))
	f.Add([]byte{manifestVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		size, chunks, err := decodeManifest(b)
		if err != nil {
			return
		}
		if size < 0 || int64(len(chunks)) != (size+BlobChunkSize-1)/BlobChunkSize {
			t.Fatalf("size %d with %d pieces", size, len(chunks))
		}
		size2, chunks2, err := decodeManifest(encodeManifest(size, chunks))
		if err != nil || size2 != size || !slices.Equal(chunks2, chunks) {
			t.Fatalf("re-encoded manifest decodes to %d, %d pieces, %v",
				size2, len(chunks2), err)
		}
	})
}

// TestEncodeValueRoundTrip pins the value layout: header fields and the
// record survive encode and decode.
func TestEncodeValueRoundTrip(t *testing.T) {
	rec := sampleRecord(7)
	val, err := encodeValue(header{taskID: "01TASK", kind: rec.Kind, host: rec.Host}, &rec)
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := decodeHeader(val)
	if err != nil || h != (header{taskID: "01TASK", kind: tasks.KindProcess, host: "web-1"}) {
		t.Fatalf("header = %+v, %v", h, err)
	}
	got, err := decodeRecord(val)
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := got.Fields["pid"].(int64); !ok || n != 4007 {
		t.Errorf("pid = %#v, want int64 4007", got.Fields["pid"])
	}
	if g, ok := got.Fields["groups"].([]string); !ok || len(g) != 2 {
		t.Errorf("groups = %#v, want []string", got.Fields["groups"])
	}
	if f, ok := got.Fields["cpu"].(float64); !ok || f != 12.5 {
		t.Errorf("cpu = %#v, want float64", got.Fields["cpu"])
	}
}
