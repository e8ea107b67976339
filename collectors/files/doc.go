// Package files holds the collectors that read the file system: files
// (walk, hash and YARA-scan), persistence (autostart locations) and
// file-fetch (one named file into a blob).
//
// Every path a hunt names is a host path ("/etc/rc.local") interpreted
// under Env.Root, and records carry host paths, never the Root prefix. The
// walkers never follow symlinks, never open FIFOs, sockets or devices, and
// count everything they pass over in Env.Stats by reason.
package files

import (
	"github.com/huntmesh/huntmesh/collectors"
)

// All returns this package's collectors. cache is shared by the files
// collector across runs so that a re-scan of an unchanged tree skips
// reading; nil disables caching.
func All(cache *HashCache) []collectors.Collector {
	return []collectors.Collector{
		NewFiles(cache),
		NewPersistence(),
		NewFetch(),
	}
}
