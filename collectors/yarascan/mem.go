package yarascan

import (
	"time"

	yara "github.com/hillu/go-yara/v4"
)

// Block is one contiguous piece of memory offered to ScanMem.
type Block struct {
	// Base is the address of the block's first byte.
	Base uint64

	// Size is the block's length in bytes.
	Size uint64

	// Fetch fills buf (len Size) with the block's bytes. A block whose
	// bytes cannot be read should leave buf zeroed rather than fail the
	// whole scan.
	Fetch func(buf []byte)
}

// BlockIterator walks the blocks of one object, such as the readable
// regions of a process. First restarts the walk; both return false when
// there are no more blocks. Conditions that use filesize see 0.
type BlockIterator interface {
	First() (Block, bool)
	Next() (Block, bool)
}

// ScanMem scans the blocks it yields as one object, so that a rule's
// condition sees matches from every block. Strings spanning two blocks are
// not matched (libyara's rule, as for process scans).
func (r *Rules) ScanMem(it BlockIterator, vars map[string]string,
	timeout time.Duration) ([]Match, error) {
	return r.scan(vars, timeout, 0, func(s *yara.Scanner) error {
		return s.ScanMemBlocks(&blockAdapter{it: it})
	})
}

// blockAdapter presents a BlockIterator as go-yara's MemoryBlockIterator.
type blockAdapter struct {
	it BlockIterator
}

func (a *blockAdapter) First() *yara.MemoryBlock {
	return toYara(a.it.First())
}

func (a *blockAdapter) Next() *yara.MemoryBlock {
	return toYara(a.it.Next())
}

func toYara(b Block, ok bool) *yara.MemoryBlock {
	if !ok {
		return nil
	}
	fetch := b.Fetch
	return &yara.MemoryBlock{
		Base: b.Base,
		Size: b.Size,
		FetchData: func(buf []byte) {
			if fetch != nil {
				fetch(buf)
			}
		},
	}
}
