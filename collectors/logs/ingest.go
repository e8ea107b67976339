package logs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
)

// ingest is the state of reading one source.
type ingest struct {
	ctx    context.Context
	env    *collectors.Env
	p      *plan
	src    Source
	mapper mapper // nil: chosen per object

	mtime   time.Time // the file's modification time, for syslog years
	records int       // records handed to Emit from this file
}

// file opens the source safely and dispatches on its format.
func (in *ingest) file() error {
	path := in.src.Path
	if excluded(in.env, path) {
		in.env.Stats.Skip("excluded", path)
		return nil
	}
	f, err := openRegular(in.env.Root, path)
	if err != nil {
		in.env.Stats.Skip(skipReason(err), path)
		return nil
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil {
		in.mtime = st.ModTime()
	}

	r := bufio.NewReaderSize(&budgetReader{ctx: in.ctx, env: in.env, r: f}, 64<<10)
	format := in.src.Format
	if format == FormatAuto {
		format = sniff(r, path)
	}
	err = in.dispatch(format, r)
	if orig, ok := isEmitErr(err); ok {
		return orig
	}
	if err := in.ctx.Err(); err != nil {
		return err
	}
	if err != nil {
		// A read error mid-file ends this file only; what was read counts.
		in.env.Stats.Skip("read error", fmt.Sprintf("%s: %v", path, err))
		in.env.Logger.Warn("read log", "path", path, "err", err)
	}
	return nil
}

// dispatch runs the reader for format.
func (in *ingest) dispatch(format string, r *bufio.Reader) error {
	switch format {
	case FormatAuth, FormatSyslog:
		return in.textLines(r)
	case FormatAuditd:
		return in.auditd(r)
	case FormatSysmonXML:
		return in.xmlEvents(r)
	case FormatEVTX:
		return in.evtx(r)
	case FormatJSON:
		return in.jsonDocument(r)
	}
	// NDJSON and the mapped formats: one object a line, unless the file
	// turns out to be one JSON document (pretty-printed or {"records":[]}).
	if firstLineIsDocument(r) {
		return in.jsonDocument(r)
	}
	return in.ndjson(r)
}

// emitError wraps an error from env.Emit so that it passes through the
// parsers, which otherwise treat errors as bad input, and ends the run.
type emitError struct{ err error }

func (e *emitError) Error() string { return e.err.Error() }
func (e *emitError) Unwrap() error { return e.err }

// emitErr marks err (from Emit) as terminal.
func emitErr(err error) error {
	if err == nil {
		return nil
	}
	return &emitError{err: err}
}

// isEmitErr reports whether err came from Emit, and returns the original.
func isEmitErr(err error) (error, bool) {
	var ee *emitError
	if errors.As(err, &ee) {
		return ee.err, true
	}
	return nil, false
}

// skipReason names why a file could not be opened.
func skipReason(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "missing"
	case errors.Is(err, os.ErrPermission):
		return "permission"
	case errors.Is(err, errNotRegular):
		return "not regular file"
	}
	return "unreadable"
}

var errNotRegular = errors.New("not a regular file")

// openRegular opens path under root without leaving root, without
// following a final symlink, and only if it is a regular file (never a
// FIFO or device, whose reads could block or never end).
func openRegular(root, path string) (*os.File, error) {
	rt, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("open root: %w", err)
	}
	defer rt.Close()
	rel := strings.TrimPrefix(filepath.Clean("/"+path), "/")
	if rel == "" {
		return nil, errNotRegular
	}
	st, err := rt.Lstat(rel)
	if err != nil {
		return nil, fmt.Errorf("stat log: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, errNotRegular
	}
	f, err := rt.OpenFile(rel, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, errNotRegular
	}
	return f, nil
}

// budgetReader pays for every read with env.WaitRead and stops on ctx.
type budgetReader struct {
	ctx context.Context
	env *collectors.Env
	r   io.Reader
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := b.r.Read(p)
	if n > 0 {
		if werr := b.env.WaitRead(b.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// evtxMagic opens every Windows EVTX file.
var evtxMagic = []byte("ElfFile\x00")

// sniff guesses a format from the first bytes and the file name.
func sniff(r *bufio.Reader, path string) string {
	head, _ := r.Peek(4096)
	if bytes.HasPrefix(head, evtxMagic) {
		return FormatEVTX
	}
	trimmed := bytes.TrimLeft(head, " \t\r\n\ufeff")
	trimmed = bytes.TrimPrefix(trimmed, []byte("\xef\xbb\xbf"))
	switch {
	case len(trimmed) == 0:
		return FormatAuth
	case trimmed[0] == '{':
		return FormatNDJSON
	case trimmed[0] == '[':
		return FormatJSON
	case trimmed[0] == '<':
		if !isPriority(trimmed) {
			return FormatSysmonXML
		}
	case bytes.HasPrefix(trimmed, []byte("type=")):
		return FormatAuditd
	}
	if strings.EqualFold(filepath.Ext(path), ".xml") {
		return FormatSysmonXML
	}
	return FormatAuth
}

// isPriority reports whether b starts with a syslog "<PRI>" prefix.
func isPriority(b []byte) bool {
	end := bytes.IndexByte(b, '>')
	if end < 2 || end > 4 {
		return false
	}
	for _, c := range b[1:end] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// firstLineIsDocument reports whether the file is one JSON document rather
// than NDJSON: its first non-blank line does not hold a complete value.
func firstLineIsDocument(r *bufio.Reader) bool {
	head, _ := r.Peek(MaxLine)
	head = bytes.TrimLeft(head, " \t\r\n")
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	if len(head) > 0 && head[0] == '[' {
		return true
	}
	line, _, _ := bytes.Cut(head, []byte("\n"))
	return !jsonStarts(line)
}

// lineReader yields lines of at most max bytes with their numbers; longer
// lines are consumed and reported as too long.
type lineReader struct {
	r   *bufio.Reader
	max int
	buf []byte
	n   int // number of the line last returned
}

// next returns the next line without its end-of-line bytes. long is set
// (and line nil) for a line over the cap. err is io.EOF at the end.
func (l *lineReader) next() (line []byte, long bool, err error) {
	l.buf = l.buf[:0]
	for {
		chunk, err := l.r.ReadSlice('\n')
		if !long {
			if len(l.buf)+len(chunk) > l.max+2 {
				long = true
				l.buf = l.buf[:0]
			} else {
				l.buf = append(l.buf, chunk...)
			}
		}
		switch {
		case err == nil:
			l.n++
			return l.finish(long)
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && (len(l.buf) > 0 || long):
			l.n++
			return l.finish(long)
		default:
			return nil, false, err
		}
	}
}

// finish trims the line end and applies the cap exactly.
func (l *lineReader) finish(long bool) ([]byte, bool, error) {
	if long {
		return nil, true, nil
	}
	b := bytes.TrimRight(l.buf, "\r\n")
	if len(b) > l.max {
		return nil, true, nil
	}
	return b, false, nil
}
