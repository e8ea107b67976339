package host

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"time"

	gnet "github.com/shirou/gopsutil/v4/net"
	"github.com/shirou/gopsutil/v4/process"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/tasks"
)

// connectionKinds are the socket kinds the connections collector accepts,
// as gopsutil names them. Unix sockets are left out: they have no address
// an IoC could name.
var connectionKinds = map[string]bool{
	"inet": true, "inet4": true, "inet6": true,
	"tcp": true, "tcp4": true, "tcp6": true,
	"udp": true, "udp4": true, "udp6": true,
}

// ConnectionParams are the parameters of the connections collector.
type ConnectionParams struct {
	// Kinds selects sockets: inet (default), inet4, inet6, tcp, tcp4, tcp6,
	// udp, udp4, udp6.
	Kinds string `json:"kinds,omitempty"`

	// States keeps only sockets in these states (LISTEN, ESTABLISHED, ...,
	// NONE for UDP); empty keeps all. Case does not matter.
	States []string `json:"states,omitempty"`

	// Snapshot reads a saved socket table (a JSON array as in
	// testdata/cryptominer/*/connections.json) instead of the live host.
	Snapshot string `json:"snapshot,omitempty"`

	// Processes names the saved process table used to name the owners of
	// snapshot sockets; default processes.json beside the snapshot.
	Processes string `json:"processes,omitempty"`

	// Time (RFC 3339) says when the snapshot was taken. Default: the newest
	// process start in the process table, else the time of the run.
	Time string `json:"time,omitempty"`
}

// parseConnectionParams decodes and checks connections parameters.
func parseConnectionParams(raw json.RawMessage) (ConnectionParams, error) {
	var p ConnectionParams
	if err := decodeParams(raw, &p); err != nil {
		return p, err
	}
	if p.Kinds == "" {
		p.Kinds = "inet"
	}
	p.Kinds = strings.ToLower(p.Kinds)
	if !connectionKinds[p.Kinds] {
		return p, fmt.Errorf("kinds: unknown kind %q", p.Kinds)
	}
	if p.Time != "" {
		if _, err := time.Parse(time.RFC3339, p.Time); err != nil {
			return p, fmt.Errorf("time: %w", err)
		}
	}
	return p, nil
}

// wantKind reports whether protocol (tcp, udp6, ...) is in kind.
func wantKind(kind, protocol string) bool {
	switch kind {
	case "inet":
		return true
	case "inet4":
		return !strings.HasSuffix(protocol, "6")
	case "inet6":
		return strings.HasSuffix(protocol, "6")
	case "tcp", "udp":
		return strings.HasPrefix(protocol, kind)
	}
	return strings.TrimSuffix(kind, "4") == protocol || kind == protocol
}

// stateSet is a case-insensitive set of socket states; nil keeps all.
type stateSet map[string]bool

func newStateSet(states []string) stateSet {
	if len(states) == 0 {
		return nil
	}
	s := stateSet{}
	for _, st := range states {
		s[strings.ToUpper(st)] = true
	}
	return s
}

func (s stateSet) want(state string) bool { return s == nil || s[strings.ToUpper(state)] }

// Connections is the connections collector: one record per TCP or UDP
// socket, with the owning process when the node may see it.
type Connections struct{}

// NewConnections returns the connections collector.
func NewConnections() *Connections { return &Connections{} }

// Name returns "connections".
func (*Connections) Name() string { return "connections" }

// Validate checks connections parameters.
func (*Connections) Validate(params json.RawMessage) error {
	_, err := parseConnectionParams(params)
	return err
}

// Collect emits one record per socket. A socket whose owner cannot be
// seen (another user's process without privilege, a kernel socket)
// carries pid 0 and is counted under "owner-unknown"; it is still emitted.
func (*Connections) Collect(ctx context.Context, env *collectors.Env,
	params json.RawMessage) error {
	p, err := parseConnectionParams(params)
	if err != nil {
		return err
	}
	if p.Snapshot != "" {
		return collectConnectionSnapshot(ctx, env, p)
	}
	if noProcTable(env) {
		return nil
	}
	return collectLiveConnections(ctx, env, p)
}

// owner is a socket's process as named in records.
type owner struct{ name, exe string }

func collectLiveConnections(ctx context.Context, env *collectors.Env, p ConnectionParams) error {
	gctx := withRoot(ctx, env.Root)
	conns, err := gnet.ConnectionsWithoutUidsWithContext(gctx, p.Kinds)
	if err != nil {
		return fmt.Errorf("list sockets: %w", err)
	}
	states := newStateSet(p.States)
	owners := map[int32]owner{}
	now := time.Now().UTC()

	for _, c := range conns {
		if err := ctx.Err(); err != nil {
			return err
		}
		proto := liveProtocol(c.Family, c.Type)
		if proto == "" || !states.want(c.Status) {
			continue
		}
		f := map[string]any{
			"protocol":       proto,
			"local_address":  c.Laddr.IP,
			"local_port":     int64(c.Laddr.Port),
			"remote_address": c.Raddr.IP,
			"remote_port":    int64(c.Raddr.Port),
			"state":          c.Status,
			"pid":            int64(c.Pid),
		}
		if c.Pid > 0 {
			o, ok := owners[c.Pid]
			if !ok {
				o = lookupOwner(gctx, c.Pid)
				owners[c.Pid] = o
			}
			f["process_name"] = o.name
			f["process_exe"] = o.exe
		} else {
			env.Stats.Skip("owner-unknown", fmt.Sprintf("%s %s:%d", proto,
				c.Laddr.IP, c.Laddr.Port))
		}
		rec := tasks.Record{Kind: tasks.KindConnection, Time: now, Source: "live", Fields: f}
		if err := env.Emit(rec); err != nil {
			return err
		}
	}
	return nil
}

// liveProtocol names a socket's protocol from its family and type.
func liveProtocol(family, typ uint32) string {
	var p string
	switch typ {
	case syscall.SOCK_STREAM:
		p = "tcp"
	case syscall.SOCK_DGRAM:
		p = "udp"
	default:
		return ""
	}
	switch family {
	case syscall.AF_INET:
		return p
	case syscall.AF_INET6:
		return p + "6"
	}
	return ""
}

// lookupOwner names a live process; a process gone or hidden gives empty
// strings.
func lookupOwner(ctx context.Context, pid int32) owner {
	gp := &process.Process{Pid: pid}
	var o owner
	o.name, _ = gp.NameWithContext(ctx)
	if exe, err := gp.ExeWithContext(ctx); err == nil {
		o.exe = strings.TrimSuffix(exe, deletedSuffix)
	}
	return o
}

// collectConnectionSnapshot emits the rows of a saved socket table, naming
// owners from the saved process table beside it.
func collectConnectionSnapshot(ctx context.Context, env *collectors.Env,
	p ConnectionParams) error {
	b, err := readSnapshot(p.Snapshot)
	if err != nil {
		return err
	}
	rows, err := decodeConnectionSnapshot(b)
	if err != nil {
		return err
	}
	procs, err := processesBeside(p.Snapshot, p.Processes)
	if err != nil {
		return err
	}
	owners := make(map[int64]snapProcess, len(procs))
	for _, pr := range procs {
		owners[pr.Pid] = pr
	}
	taken := snapshotTime(p.Time, procs)
	if taken.IsZero() {
		env.Logger.Warn("snapshot time unknown, using now", "snapshot", p.Snapshot)
		taken = time.Now().UTC()
	}
	states := newStateSet(p.States)

	for _, r := range rows {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec, err := snapConnectionRecord(r, owners, taken, p.Snapshot)
		if err != nil {
			env.Stats.Skip("malformed", r.Local+" "+r.Remote)
			continue
		}
		if !wantKind(p.Kinds, rec.Str("protocol")) || !states.want(r.State) {
			continue
		}
		if err := env.Emit(rec); err != nil {
			return err
		}
	}
	return nil
}

// snapConnectionRecord turns one saved row into a connection record.
func snapConnectionRecord(r snapConnection, owners map[int64]snapProcess,
	taken time.Time, source string) (tasks.Record, error) {
	laddr, lport, err := splitAddr(r.Local)
	if err != nil {
		return tasks.Record{}, err
	}
	raddr, rport, err := splitAddr(r.Remote)
	if err != nil {
		return tasks.Record{}, err
	}
	f := map[string]any{
		"protocol":       snapProtocol(r.Proto, laddr),
		"local_address":  laddr,
		"local_port":     lport,
		"remote_address": raddr,
		"remote_port":    rport,
		"state":          strings.ToUpper(r.State),
		"pid":            r.Pid,
	}
	if o, ok := owners[r.Pid]; ok {
		f["process_name"] = o.Name
		f["process_exe"] = strings.TrimSuffix(o.Exe, deletedSuffix)
	}
	return tasks.Record{Kind: tasks.KindConnection, Time: taken, Source: source, Fields: f}, nil
}
