package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/tasks"
)

// maxSnapshotBytes bounds a saved process or socket table. Real tables are
// kilobytes; this leaves room for very busy hosts.
const maxSnapshotBytes = 64 << 20

// snapProcess is one row of a saved process table.
type snapProcess struct {
	Pid       int64  `json:"pid"`
	Ppid      int64  `json:"ppid"`
	Name      string `json:"name"`
	Exe       string `json:"exe"`
	Cmdline   string `json:"cmdline"`
	User      string `json:"user"`
	Started   string `json:"started"`
	Cwd       string `json:"cwd,omitempty"`
	ExeSHA256 string `json:"exe_sha256,omitempty"`
}

// snapConnection is one row of a saved socket table.
type snapConnection struct {
	Proto  string `json:"proto"`
	Local  string `json:"local"`
	Remote string `json:"remote"`
	State  string `json:"state"`
	Pid    int64  `json:"pid"`
}

// readSnapshot reads a snapshot file, refusing non-regular and huge files.
func readSnapshot(path string) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read snapshot %s: %w", path, errNotRegular)
	}
	if fi.Size() > maxSnapshotBytes {
		return nil, fmt.Errorf("read snapshot %s: %w", path, errTooLarge)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	return b, nil
}

// decodeProcessSnapshot decodes a saved process table.
func decodeProcessSnapshot(b []byte) ([]snapProcess, error) {
	var rows []snapProcess
	if err := json.Unmarshal(bytes.TrimSpace(b), &rows); err != nil {
		return nil, fmt.Errorf("decode process snapshot: %w", err)
	}
	return rows, nil
}

// decodeConnectionSnapshot decodes a saved socket table.
func decodeConnectionSnapshot(b []byte) ([]snapConnection, error) {
	var rows []snapConnection
	if err := json.Unmarshal(bytes.TrimSpace(b), &rows); err != nil {
		return nil, fmt.Errorf("decode connection snapshot: %w", err)
	}
	return rows, nil
}

// newestStart is the latest parseable start time in rows, or zero.
func newestStart(rows []snapProcess) time.Time {
	var newest time.Time
	for _, r := range rows {
		if t, err := time.Parse(time.RFC3339, r.Started); err == nil && t.After(newest) {
			newest = t
		}
	}
	return newest.UTC()
}

// snapshotTime is the time a snapshot was taken: the time parameter when
// given, otherwise the newest process start in rows.
func snapshotTime(param string, rows []snapProcess) time.Time {
	if t, err := time.Parse(time.RFC3339, param); param != "" && err == nil {
		return t.UTC()
	}
	return newestStart(rows)
}

// collectProcessSnapshot emits the rows of a saved process table. Each
// record's time is the process start, so timelines place it where it began.
func collectProcessSnapshot(ctx context.Context, env *collectors.Env, p ProcessParams) error {
	b, err := readSnapshot(p.Snapshot)
	if err != nil {
		return err
	}
	rows, err := decodeProcessSnapshot(b)
	if err != nil {
		return err
	}
	taken := snapshotTime(p.Time, rows)
	names := make(map[int64]snapProcess, len(rows))
	for _, r := range rows {
		names[r.Pid] = r
	}

	filter := newProcFilter(p)
	for _, r := range rows {
		if err := ctx.Err(); err != nil {
			return err
		}
		exe, deleted := strings.CutSuffix(r.Exe, deletedSuffix)
		if !filter.wantPid(r.Pid) || !filter.wantName(r.Name, exe) {
			continue
		}
		if err := env.Emit(snapProcessRecord(r, exe, deleted, names, taken, p.Snapshot)); err != nil {
			return err
		}
	}
	return nil
}

// snapProcessRecord turns one saved row into a process record.
func snapProcessRecord(r snapProcess, exe string, deleted bool,
	byPid map[int64]snapProcess, taken time.Time, source string) tasks.Record {
	f := map[string]any{
		"pid":         r.Pid,
		"ppid":        r.Ppid,
		"name":        r.Name,
		"exe":         exe,
		"exe_deleted": deleted,
		"cmdline":     r.Cmdline,
		"user":        r.User,
	}
	if r.Cwd != "" {
		f["cwd"] = r.Cwd
	}
	if r.ExeSHA256 != "" {
		f["exe_sha256"] = strings.ToLower(r.ExeSHA256)
	}
	when := taken
	if t, err := time.Parse(time.RFC3339, r.Started); err == nil {
		when = t.UTC()
		f["started"] = when.Format(time.RFC3339)
		f["process_key"] = processKey(r.Pid, when.UnixMilli())
	}
	if parent, ok := byPid[r.Ppid]; ok && r.Ppid != r.Pid {
		f["parent_name"] = parent.Name
		if pexe, _ := strings.CutSuffix(parent.Exe, deletedSuffix); pexe != "" {
			f["parent_exe"] = pexe
		}
	}
	return tasks.Record{Kind: tasks.KindProcess, Time: when, Source: source, Fields: f}
}

// splitAddr splits "host:port" (or "[v6]:port") into address and port.
func splitAddr(s string) (string, int64, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: %w", s, err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: bad port: %w", s, err)
	}
	return h, int64(port), nil
}

// snapProtocol normalises a saved protocol name, adding the 6 when the
// local address is IPv6 so live and saved records agree.
func snapProtocol(proto, local string) string {
	proto = strings.ToLower(strings.TrimSpace(proto))
	if ip := net.ParseIP(local); ip != nil && ip.To4() == nil && !strings.HasSuffix(proto, "6") {
		proto += "6"
	}
	return proto
}

// processesBeside returns the saved process table next to a connection
// snapshot (processes.json in the same folder), or nil when there is none.
func processesBeside(connPath, explicit string) ([]snapProcess, error) {
	p := explicit
	if p == "" {
		p = filepath.Join(filepath.Dir(connPath), "processes.json")
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
	}
	b, err := readSnapshot(p)
	if err != nil {
		return nil, err
	}
	return decodeProcessSnapshot(b)
}
