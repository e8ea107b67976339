// Package intel owns huntmesh's threat intelligence: the convergent IoC set
// that nodes gossip and merge, the importers that turn STIX 2.1 bundles,
// MISP events, CSV lists and YARA files into tasks.IoC values, and the
// matcher that checks records against a compiled set.
//
// The package does no network I/O. Importers read from an io.Reader the
// caller opened; the set is a pure state machine that callers persist and
// exchange; the matcher is compiled once per set and is then safe for
// concurrent use by any number of goroutines.
package intel
