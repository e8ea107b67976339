package files

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/collectors/yarascan"
	"github.com/huntmesh/huntmesh/tasks"
)

// ErrTooLarge is returned by file-fetch for a file over max_size.
var ErrTooLarge = errors.New("file over max_size")

// ErrNoBlobSink is returned by file-fetch when the run has no blob store.
var ErrNoBlobSink = errors.New("no blob sink")

// Fetch is the "file-fetch" collector: it copies one named regular file
// into Env.Blobs and emits a blob record describing it.
type Fetch struct{}

// NewFetch returns the file-fetch collector.
func NewFetch() *Fetch { return &Fetch{} }

// Name implements collectors.Collector.
func (*Fetch) Name() string { return "file-fetch" }

type fetchParams struct {
	Path    string `json:"path"`
	MaxSize int64  `json:"max_size"`
}

func parseFetchParams(raw json.RawMessage) (*fetchParams, error) {
	p := &fetchParams{}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(p); err != nil {
		return nil, fmt.Errorf("decode file-fetch params: %w", err)
	}
	if !strings.HasPrefix(p.Path, "/") {
		return nil, fmt.Errorf("file-fetch params: path %q is not absolute", p.Path)
	}
	p.Path = path.Clean(p.Path)
	if p.MaxSize == 0 {
		p.MaxSize = DefaultMaxSize
	}
	if p.MaxSize < 0 {
		return nil, fmt.Errorf("file-fetch params: negative max_size")
	}
	return p, nil
}

// Validate implements collectors.Collector; a path is required.
func (*Fetch) Validate(params json.RawMessage) error {
	_, err := parseFetchParams(params)
	return err
}

// Collect implements collectors.Collector. Unlike the walkers, a problem
// with the one file asked for is the run's error: the hunt named it.
func (*Fetch) Collect(ctx context.Context, env *collectors.Env, params json.RawMessage) error {
	p, err := parseFetchParams(params)
	if err != nil {
		return err
	}
	if env.Blobs == nil {
		return ErrNoBlobSink
	}
	if isExcluded(env.Exclude, p.Path) {
		env.Stats.Skip("excluded", p.Path)
		return fmt.Errorf("fetch %s: path is excluded", p.Path)
	}

	// Open without following symlinks or blocking on a FIFO, then bound
	// the size both before and during the copy.
	f, err := yarascan.OpenRegular(hostToFS(env.Root, p.Path))
	if err != nil {
		env.Stats.Skip(openReason(err), p.Path)
		return fmt.Errorf("fetch %s: %w", p.Path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("fetch %s: %w", p.Path, err)
	}
	if fi.Size() > p.MaxSize {
		env.Stats.Skip("size", p.Path)
		return fmt.Errorf("fetch %s: %w: %d bytes, max_size %d",
			p.Path, ErrTooLarge, fi.Size(), p.MaxSize)
	}

	hm, h1, h256 := md5.New(), sha1.New(), sha256.New()
	src := &budgetReader{ctx: ctx, env: env,
		r: io.TeeReader(io.LimitReader(f, p.MaxSize+1), io.MultiWriter(hm, h1, h256))}
	blob, size, err := env.Blobs.PutBlob(src)
	if err != nil {
		return fmt.Errorf("fetch %s: store blob: %w", p.Path, err)
	}
	if size > p.MaxSize {
		return fmt.Errorf("fetch %s: %w: grew while read", p.Path, ErrTooLarge)
	}

	fields := map[string]any{
		"blob_sha256": blob,
		"size":        size,
		"what":        "file-fetch",
		"md5":         hex.EncodeToString(hm.Sum(nil)),
		"sha1":        hex.EncodeToString(h1.Sum(nil)),
		"sha256":      hex.EncodeToString(h256.Sum(nil)),
	}
	setPath(fields, p.Path)
	delete(fields, "name")
	return env.Emit(tasks.Record{Kind: tasks.KindBlob, Source: sourceOf(env), Fields: fields})
}

// budgetReader charges env's read budget and checks ctx on every read.
type budgetReader struct {
	ctx context.Context
	env *collectors.Env
	r   io.Reader
}

func (b *budgetReader) Read(p []byte) (int, error) {
	p = p[:min(len(p), chunkSize)]
	if err := b.env.WaitRead(b.ctx, len(p)); err != nil {
		return 0, err
	}
	return b.r.Read(p)
}
