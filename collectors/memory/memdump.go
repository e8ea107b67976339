package memory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/tasks"
)

// Memdump size limits. 256 MiB holds the heap of a typical miner or
// implant; the ceiling keeps one hunt from filling the node's store.
const (
	DefaultMaxDump = 256 << 20
	MaxDumpCeiling = 16 << 30
)

// errNothingDumped aborts the blob when no byte could be read.
var errNothingDumped = errors.New("no memory read")

// errSinkDone unblocks the dump writer when the blob sink stops reading.
var errSinkDone = errors.New("blob sink stopped reading")

// Memdump copies the readable memory regions of one process, in address
// order, into a single blob and emits one blob record describing it.
//
// Parameters: {"pid": N (required), "max_size": bytes (default 256 MiB),
// "include_file_backed": bool (default true)}. The record carries
// blob_sha256, size, what ("memdump"), pid, process_name and map: one
// entry per region included, "start-end perms blob-offset path" with
// addresses and offsets in hex, end being the last byte included plus one.
// A region that cuts short the dump because of max_size is listed with
// the part that was included. When the process exits during the dump, the
// part read so far is kept, the record says exited, and the run counts a
// skip "exited".
type Memdump struct {
	// ProcRoot is where the process table is read; "" means /proc. It is
	// for tests: hunts cannot choose it.
	ProcRoot string
}

type memdumpParams struct {
	PID               int64 `json:"pid"`
	MaxSize           int64 `json:"max_size"`
	IncludeFileBacked *bool `json:"include_file_backed"`
}

// Name implements collectors.Collector.
func (*Memdump) Name() string { return "memdump" }

// Validate implements collectors.Collector. A pid is required.
func (*Memdump) Validate(raw json.RawMessage) error {
	_, err := parseMemdumpParams(raw)
	return err
}

func parseMemdumpParams(raw json.RawMessage) (memdumpParams, error) {
	var p memdumpParams
	if err := decodeParams(raw, &p); err != nil {
		return p, err
	}
	if p.PID == 0 {
		return p, errors.New("memdump: pid is required")
	}
	if err := checkPID(p.PID); err != nil {
		return p, fmt.Errorf("memdump: %w", err)
	}
	if err := checkSize("max_size", p.MaxSize, MaxDumpCeiling); err != nil {
		return p, fmt.Errorf("memdump: %w", err)
	}
	if p.MaxSize == 0 {
		p.MaxSize = DefaultMaxDump
	}
	if p.IncludeFileBacked == nil {
		yes := true
		p.IncludeFileBacked = &yes
	}
	return p, nil
}

// Collect implements collectors.Collector. It returns an error wrapping
// ErrNoProcess when the pid does not exist, and an error when env has no
// blob sink or the sink fails.
func (c *Memdump) Collect(ctx context.Context, env *collectors.Env, raw json.RawMessage) error {
	params, err := parseMemdumpParams(raw)
	if err != nil {
		return err
	}
	if env.Blobs == nil {
		return errors.New("memdump: no blob store to write to")
	}
	began := time.Now()

	// Identify the process and read its map before any blob is started,
	// so that a wrong pid fails cleanly.
	p, err := openProc(procRoot(c.ProcRoot), int(params.PID))
	if err != nil {
		return fmt.Errorf("memdump: %w", err)
	}
	regs, err := p.regions()
	if err != nil {
		return fmt.Errorf("memdump: %w", err)
	}
	rd, err := openReader(env, p)
	if err != nil {
		return fmt.Errorf("memdump: %w", err)
	}
	defer rd.Close()

	// Stream into the sink: the sink reads the pipe in its own goroutine
	// while regions are copied in, so the dump is never held in memory.
	pr, pw := io.Pipe()
	type putResult struct {
		sha  string
		size int64
		err  error
	}
	done := make(chan putResult, 1)
	go func() {
		sha, size, err := env.Blobs.PutBlob(pr)
		pr.CloseWithError(errSinkDone)
		done <- putResult{sha, size, err}
	}()

	d := &dumper{env: env, rd: rd, max: params.MaxSize, fileBacked: *params.IncludeFileBacked}
	dumpErr := d.run(ctx, regs, pw)
	if dumpErr == nil && d.written == 0 {
		dumpErr = errNothingDumped
	}
	if dumpErr != nil {
		pw.CloseWithError(dumpErr)
	} else {
		pw.Close()
	}
	put := <-done

	// Sort out what went wrong, the sink's own failure first since a
	// failing sink also makes the writes fail.
	switch {
	case put.err != nil && dumpErr == nil,
		put.err != nil && errors.Is(dumpErr, errSinkDone):
		return fmt.Errorf("memdump pid %d: store blob: %w", p.pid, put.err)
	case errors.Is(dumpErr, errNothingDumped) && d.exited:
		env.Stats.Skip("exited", p.label())
		return nil
	case errors.Is(dumpErr, errNothingDumped):
		return fmt.Errorf("memdump pid %d: %w", p.pid, dumpErr)
	case dumpErr != nil:
		return fmt.Errorf("memdump pid %d: %w", p.pid, dumpErr)
	}

	msg := fmt.Sprintf("memory of pid %d (%s): %d bytes from %d regions",
		p.pid, p.name, put.size, len(d.entries))
	fields := map[string]any{
		"blob_sha256":  put.sha,
		"size":         put.size,
		"what":         "memdump",
		"pid":          int64(p.pid),
		"process_name": p.name,
		"map":          d.entries,
	}
	if d.exited {
		env.Stats.Skip("exited", p.label())
		fields["exited"] = true
		msg += ", process exited during the dump"
	}
	fields["message"] = msg
	env.Logger.Debug("memdump done", "pid", p.pid, "bytes", put.size,
		"regions", len(d.entries), "exited", d.exited, "dur", time.Since(began))
	return env.Emit(tasks.Record{Kind: tasks.KindBlob, Source: "live", Fields: fields})
}

func procRoot(r string) string {
	if r == "" {
		return DefaultProcRoot
	}
	return r
}

// dumper copies regions into the blob writer and keeps the map.
type dumper struct {
	env        *collectors.Env
	rd         *memReader
	max        int64
	fileBacked bool

	buf     []byte // one chunk, reused across regions
	written int64
	entries []string
	exited  bool
}

// run copies every readable region until the cap, the end of the map, or
// the process's exit. It returns only errors that end the dump: the
// context's, or the writer's.
func (d *dumper) run(ctx context.Context, regs []Region, w io.Writer) error {
	for _, reg := range regs {
		switch reg.skipReason(d.fileBacked) {
		case "":
		case "device":
			d.env.Stats.Skip("device", reg.String())
			continue
		default:
			continue
		}
		left := d.max - d.written
		if left <= 0 {
			d.env.Stats.Cut("size cap")
			return nil
		}
		want := int64(min(reg.Size(), uint64(left)))

		off := d.written
		n, err := d.copyRegion(ctx, reg.Start, want, w)
		if n > 0 {
			d.entries = append(d.entries, fmt.Sprintf("%x-%x %s %x %s",
				reg.Start, reg.Start+uint64(n), reg.Perms, off, reg.Path))
		}
		switch {
		case errors.Is(err, errExited):
			d.exited = true
			return nil
		case errors.Is(err, errUnreadable):
			d.env.Stats.Skip("unreadable", reg.String())
			continue
		case err != nil:
			return err
		}
		if want < int64(reg.Size()) {
			d.env.Stats.Cut("size cap")
			return nil
		}
	}
	return nil
}

// copyRegion reads size bytes from addr in chunks and writes them to w. It
// returns how many bytes were written and why it stopped early.
func (d *dumper) copyRegion(ctx context.Context, addr uint64, size int64,
	w io.Writer) (int64, error) {
	if d.buf == nil {
		d.buf = make([]byte, chunkSize)
	}
	buf := d.buf
	var done int64
	for done < size {
		chunk := buf[:min(size-done, int64(len(buf)))]
		n, err := d.rd.read(ctx, addr+uint64(done), chunk)
		if n > 0 {
			if _, werr := w.Write(chunk[:n]); werr != nil {
				return done, werr
			}
			done += int64(n)
			d.written += int64(n)
		}
		if err != nil {
			return done, err
		}
	}
	return done, nil
}
