package node

import (
	"fmt"
	"os"
	"strconv"

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
