// Package yarascan wraps go-yara so that no other package sees it.
//
// Compile turns rule sources into Rules; Rules scan files, byte slices,
// process memory and caller-supplied memory blocks, and are safe for
// concurrent use: each scan borrows its own libyara scanner from a small
// free list, so external variables set for one scan never leak into
// another. Call Destroy once no more scans will start.
//
// NB: libyara offers no way to bound compile time. Compile bounds the total
// source size instead (MaxSourceBytes), which in practice bounds the work.
package yarascan

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	yara "github.com/hillu/go-yara/v4"
)

// MaxSourceBytes caps the total size of the rule text handed to Compile.
// Public rule sets for a whole family stay well under 1 MiB; 4 MiB leaves
// room for a large hunt while keeping a hostile hunt from exhausting memory
// in the compiler, which has no time limit of its own.
const MaxSourceBytes = 4 << 20

// ExternalVars are the external variables defined before compiling and set
// on every scan. Many public rule sets refer to them; a scan sets those the
// caller did not pass to "".
var ExternalVars = []string{"filename", "filepath", "extension", "filetype"}

// ErrSourceTooLarge is returned by Compile when the sources exceed
// MaxSourceBytes.
var ErrSourceTooLarge = errors.New("rule sources too large")

// ErrNoRules is returned by Compile when no source was given.
var ErrNoRules = errors.New("no rule sources")

// ErrTimeout is returned by a scan that ran past its timeout.
var ErrTimeout = errors.New("scan timeout")

// ErrNotRegular is returned by ScanFile for anything but a regular file:
// symlinks, FIFOs, sockets, devices and directories are never opened.
var ErrNotRegular = errors.New("not a regular file")

// ErrDestroyed is returned by a scan started after Destroy.
var ErrDestroyed = errors.New("rules destroyed")

// importRE finds an import statement wherever it stands; a false
// positive (the words inside a comment or string) only keeps the fault
// guard on.
var importRE = regexp.MustCompile(`\bimport\s*"`)

// Source is one named rule text, such as the contents of a .yar file.
type Source struct {
	// Name identifies the source in errors and becomes the rule namespace
	// when the source declares none; an empty name uses "default".
	Name string `json:"name"`

	// Text is the YARA rule text.
	Text string `json:"text"`
}

// CompileError reports the first error libyara found in a source.
type CompileError struct {
	// Source is the Name of the offending source.
	Source string

	// Line is the 1-based line of the error in that source, 0 if unknown.
	Line int

	// Message is the compiler's message.
	Message string
}

// Error implements error.
func (e *CompileError) Error() string {
	return fmt.Sprintf("compile yara source %q line %d: %s", e.Source, e.Line, e.Message)
}

// Match is one rule that matched a scanned object.
type Match struct {
	// Rule is the rule identifier.
	Rule string `json:"rule"`

	// Namespace is the namespace the rule was compiled into.
	Namespace string `json:"namespace,omitempty"`

	// Tags are the rule's tags.
	Tags []string `json:"tags,omitempty"`

	// Meta holds the rule's meta values formatted as strings.
	Meta map[string]string `json:"meta,omitempty"`
}

// Rules is a compiled rule set. It is safe for concurrent scans.
type Rules struct {
	names []string
	hash  string

	// noImports is set when no source imports a module, so that a scan
	// of a Go-owned buffer runs only libyara's own matching and condition
	// code and may skip its fault guard (see ScanBytes).
	noImports bool

	// vars are the ExternalVars some source mentions; a scan sets only
	// these, as the others cannot affect a verdict.
	vars []string

	// mu is held for reading by every scan and for writing by Destroy, so
	// the libyara rules outlive the scans that use them.
	mu    sync.RWMutex
	rules *yara.Rules        // nil once destroyed
	idle  chan *yara.Scanner // scanners ready for reuse
}

// Compile compiles sources into one rule set. Each source goes into its
// own namespace (its Name) so that rule names may repeat across sources.
// A syntax or semantic error returns a *CompileError naming the source,
// line and message.
func Compile(sources []Source) (*Rules, error) {
	if len(sources) == 0 {
		return nil, ErrNoRules
	}
	total := 0
	for _, s := range sources {
		total += len(s.Text)
	}
	if total > MaxSourceBytes {
		return nil, fmt.Errorf("compile yara: %w: %d bytes over %d",
			ErrSourceTooLarge, total, MaxSourceBytes)
	}

	c, err := yara.NewCompiler()
	if err != nil {
		return nil, fmt.Errorf("create yara compiler: %w", err)
	}
	defer c.Destroy()
	// Rules arrive with hunts; they must not read files on the node.
	c.DisableIncludes()
	for _, v := range ExternalVars {
		if err := c.DefineVariable(v, ""); err != nil {
			return nil, fmt.Errorf("define yara variable %s: %w", v, err)
		}
	}

	// Add each source, turning the first compiler message into a
	// CompileError that names the source.
	h := sha256.New()
	noImports := true
	for _, s := range sources {
		if importRE.MatchString(s.Text) {
			noImports = false
		}
		ns := s.Name
		if ns == "" {
			ns = "default"
		}
		fmt.Fprintf(h, "%d:%s\x00%d:%s\x00", len(ns), ns, len(s.Text), s.Text)
		if err := c.AddString(s.Text, ns); err != nil {
			ce := &CompileError{Source: ns, Message: err.Error()}
			if len(c.Errors) > 0 {
				ce.Line = c.Errors[0].Line
				ce.Message = c.Errors[0].Text
			}
			return nil, ce
		}
	}

	yr, err := c.GetRules()
	if err != nil {
		return nil, fmt.Errorf("get compiled yara rules: %w", err)
	}
	r := &Rules{
		rules: yr,
		hash:  hex.EncodeToString(h.Sum(nil)),

		noImports: noImports,
		idle:      make(chan *yara.Scanner, 2*runtime.GOMAXPROCS(0)),
	}
	for _, v := range ExternalVars {
		word := regexp.MustCompile(`\b` + v + `\b`)
		for _, s := range sources {
			if word.MatchString(s.Text) {
				r.vars = append(r.vars, v)
				break
			}
		}
	}
	for _, rule := range yr.GetRules() {
		r.names = append(r.names, rule.Identifier())
	}
	sort.Strings(r.names)
	return r, nil
}

// RuleNames lists the identifiers of the compiled rules, sorted.
func (r *Rules) RuleNames() []string {
	return append([]string(nil), r.names...)
}

// Count is the number of compiled rules.
func (r *Rules) Count() int { return len(r.names) }

// Hash identifies the rule set by the SHA-256 of its sources (names and
// texts), so that results cached under one rule set are not reused for
// another.
func (r *Rules) Hash() string { return r.hash }

// Destroy waits for running scans to finish and frees the rule set. Scans
// started afterwards return ErrDestroyed. It is safe to call twice.
func (r *Rules) Destroy() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rules == nil {
		return
	}
	for {
		select {
		case s := <-r.idle:
			s.Destroy()
			continue
		default:
		}
		break
	}
	r.rules.Destroy()
	r.rules = nil
}

// scan runs fn with a scanner whose variables and timeout are set, and
// collects the matches. It holds the read lock for the whole scan.
func (r *Rules) scan(vars map[string]string, timeout time.Duration, flags yara.ScanFlags,
	fn func(*yara.Scanner) error) ([]Match, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.rules == nil {
		return nil, ErrDestroyed
	}

	s, err := r.borrow()
	if err != nil {
		return nil, err
	}
	for _, v := range r.vars {
		if err := s.DefineVariable(v, vars[v]); err != nil {
			s.Destroy()
			return nil, fmt.Errorf("set yara variable %s: %w", v, err)
		}
	}
	var got yara.MatchRules
	s.SetTimeout(timeout).SetFlags(flags).SetCallback(&got)
	scanErr := fn(s)
	r.giveBack(s)

	if scanErr != nil {
		return nil, translate(scanErr)
	}
	return convert(got), nil
}

func (r *Rules) borrow() (*yara.Scanner, error) {
	select {
	case s := <-r.idle:
		return s, nil
	default:
	}
	s, err := yara.NewScanner(r.rules)
	if err != nil {
		return nil, fmt.Errorf("create yara scanner: %w", err)
	}
	return s, nil
}

func (r *Rules) giveBack(s *yara.Scanner) {
	select {
	case r.idle <- s:
	default:
		s.Destroy()
	}
}

func convert(in yara.MatchRules) []Match {
	if len(in) == 0 {
		return nil
	}
	out := make([]Match, 0, len(in))
	for _, m := range in {
		mm := Match{Rule: m.Rule, Namespace: m.Namespace}
		if len(m.Tags) > 0 {
			mm.Tags = append([]string(nil), m.Tags...)
		}
		if len(m.Metas) > 0 {
			mm.Meta = make(map[string]string, len(m.Metas))
			for _, meta := range m.Metas {
				mm.Meta[meta.Identifier] = fmt.Sprint(meta.Value)
			}
		}
		out = append(out, mm)
	}
	return out
}

// Names returns the rule names of ms, sorted and without duplicates.
func Names(ms []Match) []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range ms {
		if !seen[m.Rule] {
			seen[m.Rule] = true
			out = append(out, m.Rule)
		}
	}
	sort.Strings(out)
	return out
}

// translate maps libyara's errors onto this package's sentinels.
func translate(err error) error {
	var ye yara.Error
	if errors.As(err, &ye) && strings.Contains(ye.Error(), "timeout") {
		return fmt.Errorf("yara scan: %w", ErrTimeout)
	}
	return fmt.Errorf("yara scan: %w", err)
}
