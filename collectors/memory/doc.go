// Package memory holds the collectors that read live process memory on
// Linux: yara-memory scans it with YARA rules, memdump copies one
// process's readable regions into a blob.
//
// Both read /proc/PID/maps and /proc/PID/mem of the live host whatever the
// Env's Root says, since a fixture tree has no processes. They skip
// regions without read permission, the kernel's [vvar] and [vsyscall]
// pages and mappings of device nodes, whose reads can have side effects.
// A region the kernel refuses to hand out (EIO, EFAULT) is counted as a
// skip "unreadable"; a process that exits while it is read is counted as
// a skip "exited" and never fails the run. Reads are paced by the Env's
// read budget and stop when the context ends.
//
// Reading another process's memory needs the same rights as ptrace
// attach: root, or CAP_SYS_PTRACE, or the same user under a permissive
// Yama policy.
package memory

import "github.com/huntmesh/huntmesh/collectors"

// All returns the collectors of this package with their defaults.
func All() []collectors.Collector {
	return []collectors.Collector{&YaraMemory{}, &Memdump{}}
}
