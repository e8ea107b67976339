package huntfile

import (
	"os"
	"testing"
)

// FuzzParse feeds hostile hunt files to the parser and the builder: they
// must return an error or a hunt, never panic.
func FuzzParse(f *testing.F) {
	for _, p := range []string{"../hunts/cryptominer.yaml", "../hunts/persistence-sweep.yaml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("selector: {sample: 5}\ncollectors: [{name: x, params: {a: [1, {b: c}]}}]"))
	f.Add([]byte("chains: [{name: a, when: {after: a}}]"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		hf, err := Parse(data, dir)
		if err != nil {
			return
		}
		hf.Validate(3, nil)
	})
}
