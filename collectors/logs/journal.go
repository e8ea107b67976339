package logs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strconv"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
)

// journalSource is Record.Source for journal entries.
const journalSource = "journal"

// journal streams `journalctl -o json` for the time window, one entry a
// line, through the journal mapping. The child is killed when ctx ends or
// when Emit stops the run. A missing journalctl is counted, not an error.
func (c *Collector) journal(ctx context.Context, env *collectors.Env, p *plan) error {
	bin := c.JournalCmd
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("journalctl"); err != nil {
			env.Stats.Skip("journal unavailable", "journalctl not found")
			return nil
		}
	}

	// Always bounded in time: a live journal may hold months.
	since := p.Since
	if since.IsZero() {
		since = time.Now().Add(-defaultJournalWindow)
	}
	args := []string{"-o", "json", "--no-pager", "-q",
		"--since", "@" + strconv.FormatInt(since.Unix(), 10)}
	if !p.Until.IsZero() {
		args = append(args, "--until", "@"+strconv.FormatInt(p.Until.Unix(), 10))
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(runCtx, bin, args...)
	cmd.WaitDelay = 2 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{buf: &stderr, left: 4096}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil
	}
	if err := cmd.Start(); err != nil {
		env.Stats.Skip("journal unavailable", err.Error())
		env.Logger.Warn("start journalctl", "err", err)
		return nil
	}

	in := &ingest{ctx: ctx, env: env, p: p, src: Source{Path: journalSource},
		mapper: mapJournal}
	start := time.Now()
	rerr := in.ndjson(bufio.NewReaderSize(&budgetReader{ctx: ctx, env: env, r: out}, 64<<10))
	cancel() // stop the child if we stopped reading early
	werr := cmd.Wait()

	if orig, ok := isEmitErr(rerr); ok {
		return orig
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var exitErr *exec.ExitError
	if werr != nil && errors.As(werr, &exitErr) && rerr == nil {
		// journalctl exits non-zero with no journal files; say so once.
		env.Stats.Skip("journal error", firstLine(stderr.String()))
		env.Logger.Warn("journalctl failed", "err", werr, "stderr", firstLine(stderr.String()))
	}
	env.Logger.Debug("journal read", "records", in.records, "dur", time.Since(start))
	return nil
}

// limitedWriter keeps the first bytes written and drops the rest.
type limitedWriter struct {
	buf  *bytes.Buffer
	left int
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	if w.left > 0 {
		n := min(len(p), w.left)
		w.buf.Write(p[:n])
		w.left -= n
	}
	return len(p), nil
}
