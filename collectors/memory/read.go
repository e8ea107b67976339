package memory

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"

	"github.com/huntmesh/huntmesh/collectors"
)

// chunkSize is how much process memory one read asks for: large enough
// that syscalls are few, small enough that the budget limiter can pace
// reads smoothly.
const chunkSize = 1 << 20

var (
	// errExited means the process went away while its memory was read.
	errExited = errors.New("process exited")

	// errUnreadable means a region could not be read (EIO, EFAULT): pages
	// the kernel will not hand out, such as some driver mappings.
	errUnreadable = errors.New("region unreadable")
)

// memReader reads one process's memory under a run's read budget.
type memReader struct {
	env *collectors.Env
	p   *proc
	mem *os.File
}

// open prepares reads of p's memory. Close it when done.
func openReader(env *collectors.Env, p *proc) (*memReader, error) {
	mem, err := p.openMem()
	if err != nil {
		return nil, err
	}
	return &memReader{env: env, p: p, mem: mem}, nil
}

func (m *memReader) Close() error { return m.mem.Close() }

// read fills buf from address addr after waiting for the budget. It
// returns the bytes read and errExited when the process is gone,
// errUnreadable (wrapping the cause) when the pages cannot be read, or the
// context's error.
func (m *memReader) read(ctx context.Context, addr uint64, buf []byte) (int, error) {
	if err := m.env.WaitRead(ctx, len(buf)); err != nil {
		return 0, err
	}
	if addr > math.MaxInt64-uint64(len(buf)) {
		return 0, fmt.Errorf("%w: address %#x out of range", errUnreadable, addr)
	}
	n, err := m.mem.ReadAt(buf, int64(addr))
	if n == len(buf) {
		return n, nil
	}

	// A short read is either a region the kernel refuses or a process
	// whose address space is gone; only the process table can tell.
	if !m.p.alive() {
		return n, errExited
	}
	return n, fmt.Errorf("%w: %w", errUnreadable, err)
}
