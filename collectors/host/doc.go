// Package host holds the collectors that read the live state of the host a
// node runs on: processes, connections, system facts and accounts.
//
// Each collector reads under env.Root ("/" on a live host; a fixture tree
// in tests), so /proc, /etc and /var/log are looked up below it. The
// processes and connections collectors can also replay a saved table (the
// "snapshot" parameter) for scenario tests and offline triage. gopsutil is
// used only inside this package; callers see collectors.Collector values.
//
// Callers create one HashCache per node and pass it to All (or
// NewProcesses), so executable digests survive from one run to the next.
package host

import "github.com/huntmesh/huntmesh/collectors"

// All returns the collectors of this package. cache keeps executable
// digests across runs; nil gives the processes collector its own.
func All(cache *HashCache) []collectors.Collector {
	return []collectors.Collector{
		NewProcesses(cache),
		NewConnections(),
		NewSystem(),
		NewAccounts(),
	}
}
