package yarascan

import (
	"os"
	"strings"
	"testing"
	"time"
)

// BenchmarkScanBytes measures one scan of a 4 KiB text buffer with the
// scenario's miner rules: the fixed cost a small file pays in the files
// collector.
func BenchmarkScanBytes(b *testing.B) {
	src, err := os.ReadFile("../../testdata/cryptominer/intel/miner.yar")
	if err != nil {
		b.Fatal(err)
	}
	r, err := Compile([]Source{{Name: "miner.yar", Text: string(src)}})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Destroy()
	buf := []byte(strings.Repeat("alpha bravo charlie delta ", 160))
	vars := map[string]string{"filename": "f.txt", "filepath": "/d/f.txt",
		"extension": ".txt", "filetype": "TEXT"}
	for b.Loop() {
		if _, err := r.ScanBytes(buf, vars, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}
