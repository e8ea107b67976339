// Package tasks holds huntmesh's wire types and the rules that guard them.
//
// Everything that crosses the mesh is defined here: hunts, queries, intel
// updates, cancels and results, the records and detections they carry, and
// the signed envelope that wraps each of them. An envelope is verified before
// its payload is decoded, and a task is refused when it is too large, signed
// by a key the node does not trust for its role, outside its validity
// window, or already seen.
//
// The package does no I/O: callers hand it bytes, keys and the current time.
package tasks
