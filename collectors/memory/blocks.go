package memory

import (
	"context"
	"errors"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/collectors/yarascan"
)

// maxBlock bounds one block handed to YARA. libyara holds a whole block in
// one buffer, so a multi-gigabyte mapping is offered in pieces.
const maxBlock = 16 << 20

// block is one piece of a readable region.
type block struct {
	reg *Region
	off uint64 // offset of the piece within the region
	len uint64
}

func (b block) addr() uint64 { return b.reg.Start + b.off }

// planBlocks splits the readable regions into blocks of at most maxBlock
// bytes, stopping at limit bytes in all. It reports whether the limit left
// memory out, and counts device mappings skipped.
func planBlocks(regs []Region, limit int64, fileBacked bool,
	stats *collectors.Stats) (blocks []block, capped bool) {
	var total uint64
	for i := range regs {
		reg := &regs[i]
		switch reg.skipReason(fileBacked) {
		case "":
		case "device":
			stats.Skip("device", reg.String())
			continue
		default:
			continue
		}
		for off := uint64(0); off < reg.Size(); off += maxBlock {
			if total >= uint64(limit) {
				return blocks, true
			}
			n := min(reg.Size()-off, maxBlock, uint64(limit)-total)
			blocks = append(blocks, block{reg: reg, off: off, len: n})
			total += n
		}
	}
	return blocks, false
}

// blockIter offers a process's blocks to yarascan.Rules.ScanMem. Reading
// happens in Fetch, which YARA calls once per block in order; a failed
// read leaves zeros, and an exited process or an ended context makes Next
// report the end so the scan stops early.
type blockIter struct {
	ctx    context.Context
	rd     *memReader
	stats  *collectors.Stats
	blocks []block

	i       int
	lastBad *Region // last region counted unreadable, to count each once
	exited  bool
	err     error // the context's error, once it ended
}

var _ yarascan.BlockIterator = (*blockIter)(nil)

// First implements yarascan.BlockIterator.
func (it *blockIter) First() (yarascan.Block, bool) {
	it.i = 0
	return it.current()
}

// Next implements yarascan.BlockIterator.
func (it *blockIter) Next() (yarascan.Block, bool) {
	it.i++
	return it.current()
}

func (it *blockIter) current() (yarascan.Block, bool) {
	if it.i >= len(it.blocks) || it.exited || it.err != nil {
		return yarascan.Block{}, false
	}
	b := it.blocks[it.i]
	return yarascan.Block{
		Base:  b.addr(),
		Size:  b.len,
		Fetch: func(buf []byte) { it.fetch(b, buf) },
	}, true
}

// fetch reads block b into buf, zeroing what could not be read.
func (it *blockIter) fetch(b block, buf []byte) {
	// go-yara reuses one growing buffer, so it may be longer than the
	// block; only the block's length is scanned.
	buf = buf[:min(uint64(len(buf)), b.len)]
	done, err := it.readInto(b.addr(), buf)
	clear(buf[done:])
	switch {
	case err == nil:
	case errors.Is(err, errExited):
		it.exited = true
	case errors.Is(err, errUnreadable):
		if it.lastBad != b.reg {
			it.lastBad = b.reg
			it.stats.Skip("unreadable", b.reg.String())
		}
	default:
		it.err = err
	}
}

// readInto fills buf from addr in chunks, so that the read budget paces
// big blocks smoothly. It returns how many bytes were filled.
func (it *blockIter) readInto(addr uint64, buf []byte) (int, error) {
	done := 0
	for done < len(buf) {
		end := min(done+chunkSize, len(buf))
		n, err := it.rd.read(it.ctx, addr+uint64(done), buf[done:end])
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}
