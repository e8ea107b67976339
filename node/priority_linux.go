package node

import (
	"fmt"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// ioprioClassBestEffort and the shift come from linux/ioprio.h.
const (
	ioprioClassBestEffort = 2
	ioprioClassShift      = 13
	ioprioWhoProcess      = 1
)

// LowerPriority sets the CPU niceness of every thread of this process to
// nice and its I/O priority to the lowest best-effort level, so that scans
// yield to the host's real work. Linux keeps both per thread; threads
// started later inherit them from the thread that starts them.
func LowerPriority(nice int) error {
	if nice < 0 || nice > 19 {
		return fmt.Errorf("niceness %d: want 0 to 19", nice)
	}
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("list threads: %w", err)
	}
	var firstErr error
	for _, e := range entries {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("set niceness of thread %d: %w", tid, err)
		}
		prio := ioprioClassBestEffort<<ioprioClassShift | 7
		_, _, errno := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), uintptr(prio))
		if errno != 0 && firstErr == nil {
			firstErr = fmt.Errorf("set I/O priority of thread %d: %w", tid, errno)
		}
	}
	return firstErr
}

// Per-hunt niceness. A hunt may ask to run at a lower CPU priority than
// the node's (its budget's nice; the node's ceiling wins the other way).
// Linux keeps niceness per thread and Go moves goroutines between threads,
// so it cannot be given to one hunt's goroutines alone: while such a hunt
// runs the whole node takes the highest niceness any running hunt asked
// for, and goes back when the last of them ends. Going back needs
// CAP_SYS_NICE (root has it); without it the node stays at the lower
// priority, which errs on the host's side.

// niceHolds tracks the niceness running hunts asked for.
type niceHolds struct {
	mu      sync.Mutex
	byTask  map[string]int
	applied int // the niceness last set on the node's threads
}

// holdNice lowers the node's priority to nice while the hunt id runs, if
// nice is above the node's own; the returned func ends the hold.
func (n *Node) holdNice(id string, nice int) func() {
	base := n.cfg.Budget.Nice
	if nice <= base {
		return func() {}
	}
	h := &n.nice
	apply := func() {
		want := base
		for _, v := range h.byTask {
			want = max(want, v)
		}
		if want == h.applied {
			return
		}
		if err := LowerPriority(want); err != nil {
			n.log.Warn("set hunt priority", "nice", want, "err", err)
		}
		h.applied = want
	}
	h.mu.Lock()
	if h.byTask == nil {
		h.byTask, h.applied = map[string]int{}, base
	}
	h.byTask[id] = nice
	apply()
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		delete(h.byTask, id)
		apply()
		h.mu.Unlock()
	}
}
