package files

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/huntmesh/huntmesh/collectors/yarascan"
)

// DefaultMaxSize is the largest file the files and file-fetch collectors
// read when a hunt sets no max_size: big enough for any binary a miner or
// implant ships, small enough that one file cannot stall a scan.
const DefaultMaxSize = 64 << 20

// maxWorkers bounds the workers a hunt may ask for; hashing is I/O and CPU
// bound, so more than a few per core only adds contention.
const maxWorkers = 32

// maxPatterns bounds include and exclude lists and roots so that a hostile
// hunt cannot make every file name check slow.
const maxPatterns = 256

// filesParams are the parameters of the files collector.
type filesParams struct {
	Roots          []string          `json:"roots"`
	Include        []string          `json:"include"`
	Exclude        []string          `json:"exclude"`
	MinSize        int64             `json:"min_size"`
	MaxSize        int64             `json:"max_size"`
	ModifiedAfter  string            `json:"modified_after"`
	ModifiedBefore string            `json:"modified_before"`
	OneFilesystem  *bool             `json:"one_filesystem"`
	Hashes         []string          `json:"hashes"`
	Yara           []yarascan.Source `json:"yara"`
	Workers        int               `json:"workers"`

	// Parsed forms, filled by parseFilesParams.
	after, before time.Time
	hashes        hashSet
}

// hashSet says which digests to compute.
type hashSet struct{ md5, sha1, sha256 bool }

func (h hashSet) any() bool { return h.md5 || h.sha1 || h.sha256 }

// parseFilesParams decodes and validates raw, applying defaults.
func parseFilesParams(raw json.RawMessage) (*filesParams, error) {
	p := &filesParams{}
	if len(raw) > 0 && string(raw) != "null" {
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(p); err != nil {
			return nil, fmt.Errorf("decode files params: %w", err)
		}
	}

	// Roots are host paths; relative ones are refused rather than guessed.
	if len(p.Roots) == 0 {
		p.Roots = []string{"/"}
	}
	for _, r := range p.Roots {
		if !strings.HasPrefix(r, "/") {
			return nil, fmt.Errorf("files params: root %q is not absolute", r)
		}
	}
	if len(p.Roots) > maxPatterns || len(p.Include) > maxPatterns ||
		len(p.Exclude) > maxPatterns {
		return nil, fmt.Errorf("files params: over %d roots or patterns", maxPatterns)
	}
	for _, g := range append(append([]string(nil), p.Include...), p.Exclude...) {
		if _, err := path.Match(g, ""); err != nil {
			return nil, fmt.Errorf("files params: bad pattern %q: %w", g, err)
		}
	}

	// Sizes and times.
	if p.MaxSize == 0 {
		p.MaxSize = DefaultMaxSize
	}
	if p.MinSize < 0 || p.MaxSize < 0 || p.MinSize > p.MaxSize {
		return nil, fmt.Errorf("files params: bad size window %d..%d", p.MinSize, p.MaxSize)
	}
	var err error
	if p.after, err = parseTime(p.ModifiedAfter); err != nil {
		return nil, fmt.Errorf("files params: modified_after: %w", err)
	}
	if p.before, err = parseTime(p.ModifiedBefore); err != nil {
		return nil, fmt.Errorf("files params: modified_before: %w", err)
	}

	// Hashes default to all three.
	if p.Hashes == nil {
		p.Hashes = []string{"md5", "sha1", "sha256"}
	}
	for _, h := range p.Hashes {
		switch strings.ToLower(h) {
		case "md5":
			p.hashes.md5 = true
		case "sha1":
			p.hashes.sha1 = true
		case "sha256":
			p.hashes.sha256 = true
		default:
			return nil, fmt.Errorf("files params: unknown hash %q", h)
		}
	}

	if p.Workers == 0 {
		p.Workers = 1
	}
	if p.Workers < 0 || p.Workers > maxWorkers {
		return nil, fmt.Errorf("files params: workers %d not in 1..%d", p.Workers, maxWorkers)
	}
	total := 0
	for _, s := range p.Yara {
		total += len(s.Text)
	}
	if total > yarascan.MaxSourceBytes {
		return nil, fmt.Errorf("files params: %w", yarascan.ErrSourceTooLarge)
	}
	return p, nil
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, errors.New("not an RFC 3339 time")
	}
	return t, nil
}

// oneFS reports whether the walk stays on each root's file system.
func (p *filesParams) oneFS() bool {
	return p.OneFilesystem == nil || *p.OneFilesystem
}

// matchAny reports whether hostPath matches one of pats. A pattern
// without a slash is matched against the base name, one with a slash
// against the whole host path.
func matchAny(pats []string, hostPath string) bool {
	base := path.Base(hostPath)
	for _, p := range pats {
		target := base
		if strings.Contains(p, "/") {
			target = hostPath
		}
		if ok, _ := path.Match(p, target); ok {
			return true
		}
	}
	return false
}
