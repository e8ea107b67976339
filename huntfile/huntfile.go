// Package huntfile reads hunt files: YAML documents that describe a hunt
// (collectors and their parameters, indicators, detection rules, chained
// rules, selector, deadline, budget, recurrence) so that a hunt can be
// reviewed, versioned and reused. docs/hunts.md documents the format.
//
// Load reads a file and the YARA and intel files it includes (relative to
// the hunt file); Validate checks it without a node; Hunt builds the wire
// task that an analyst signs.
package huntfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/huntmesh/huntmesh/intel"
	"github.com/huntmesh/huntmesh/tasks"
)

// MaxFileBytes bounds a hunt file and each file it includes.
const MaxFileBytes = 4 << 20

// DefaultDeadline is how long nodes accept a hunt whose file sets none.
const DefaultDeadline = 5 * time.Minute

// File is a parsed hunt file.
type File struct {
	// Name and Description say what the hunt is for.
	Name        string `yaml:"name"`
	Description string `yaml:"description"`

	// Selector picks the nodes: an expression, or a mapping with expr,
	// sample and always_high_value.
	Selector Selector `yaml:"selector"`

	// Deadline is how long nodes accept and run the hunt; Every, when
	// set, repeats it at that interval until the deadline.
	Deadline Duration `yaml:"deadline"`
	Every    Duration `yaml:"every"`

	Budget        Budget      `yaml:"budget"`
	MaxRows       int         `yaml:"max_rows"`
	ReturnRecords bool        `yaml:"return_records"`
	Root          string      `yaml:"root"`
	Collectors    []Collector `yaml:"collectors"`

	// IoCs are written inline; Intel names intel files (STIX, MISP, CSV,
	// YARA) whose indicators join them.
	IoCs  []IoC    `yaml:"iocs"`
	Intel []string `yaml:"intel"`

	Rules  []Rule  `yaml:"rules"`
	Chains []Chain `yaml:"chains"`

	// dir is the folder of the file, for includes.
	dir string
	// loaded are the indicators read from Intel.
	loaded []tasks.IoC
	// forwards are the forwarded hunts built by the last Hunt call.
	forwards []*tasks.Hunt
	// yaraIoCs are the YARA files collectors name, as indicators, so that
	// their matches are detections; yaraSeen dedupes them by path.
	yaraIoCs []tasks.IoC
	yaraSeen map[string]bool
}

// Selector is the YAML form of tasks.Selector; a plain string is its
// expression.
type Selector struct {
	Expr            string `yaml:"expr"`
	Sample          string `yaml:"sample"`
	AlwaysHighValue bool   `yaml:"always_high_value"`
}

// UnmarshalYAML accepts a string or a mapping.
func (s *Selector) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		s.Expr = n.Value
		return nil
	}
	type plain Selector
	return n.Decode((*plain)(s))
}

// Duration is a time.Duration written as "10m" or "1h30m".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: duration %q: want e.g. 90s, 10m, 2h", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Budget is the YAML form of tasks.Budget.
type Budget struct {
	ReadBytesPerSec int64    `yaml:"read_bytes_per_sec"`
	MaxRecords      int      `yaml:"max_records"`
	WallTime        Duration `yaml:"wall_time"`
	Nice            int      `yaml:"nice"`
}

// Collector names a collector, its parameters (any YAML mapping, passed
// on as JSON), and YARA files added to its "yara" parameter.
type Collector struct {
	Name   string         `yaml:"name"`
	Params map[string]any `yaml:"params"`
	Yara   []string       `yaml:"yara"`
}

// IoC is the YAML form of tasks.IoC.
type IoC struct {
	Type     string   `yaml:"type"`
	Value    string   `yaml:"value"`
	Severity string   `yaml:"severity"`
	Tags     []string `yaml:"tags"`
}

// Rule is the YAML form of tasks.Rule; the condition is under "when".
type Rule struct {
	Name     string   `yaml:"name"`
	When     string   `yaml:"when"`
	Severity string   `yaml:"severity"`
	Tags     []string `yaml:"tags"`
}

// Chain is the YAML form of tasks.Chain.
type Chain struct {
	Name      string         `yaml:"name"`
	When      When           `yaml:"when"`
	Collect   []Collector    `yaml:"collect"`
	Derive    []tasks.Derive `yaml:"derive"`
	MaxDepth  int            `yaml:"max_depth"`
	PerMinute int            `yaml:"per_minute"`

	// Forward names another hunt file: signed with this hunt and
	// published by the node where the chain triggers, so that the peers
	// its selector picks run it too.
	Forward string `yaml:"forward"`
}

// When is the YAML form of tasks.ChainWhen; the CEL condition is "expr".
type When struct {
	Tags       []string `yaml:"tags"`
	IoCTypes   []string `yaml:"ioc_types"`
	Collectors []string `yaml:"collectors"`
	Kinds      []string `yaml:"kinds"`
	Severity   string   `yaml:"severity"`
	After      string   `yaml:"after"`
	Expr       string   `yaml:"expr"`
}

// Load reads the hunt file at path and the files it includes.
func Load(path string) (*File, error) {
	data, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Parse decodes a hunt file whose includes are relative to dir. Unknown
// keys are refused, so that a misspelt field is not silently ignored.
func Parse(data []byte, dir string) (*File, error) {
	f := &File{dir: dir}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty hunt file")
		}
		return nil, fmt.Errorf("decode hunt file: %w", err)
	}
	for _, p := range f.Intel {
		imp, err := intel.ImportFile(f.include(p), time.Now())
		if err != nil {
			return nil, fmt.Errorf("intel: %w", err)
		}
		f.loaded = append(f.loaded, imp.IoCs...)
	}
	return f, nil
}

// include resolves an included path against the hunt file's folder.
func (f *File) include(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(f.dir, p)
}

// readBounded reads a regular file of at most MaxFileBytes. A symlink is
// followed (the analyst names the files), but a device, pipe or folder is
// refused, and the read stops at the bound whatever the file does.
func readBounded(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read hunt file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read %s: not a regular file", path)
	}
	if fi.Size() > MaxFileBytes {
		return nil, fmt.Errorf("read %s: %d bytes, over %d", path, fi.Size(), MaxFileBytes)
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read hunt file: %w", err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("read %s: over %d bytes", path, MaxFileBytes)
	}
	return data, nil
}

// specs turns collectors into wire specs, reading their YARA files.
func (f *File) specs(cs []Collector, where string) ([]tasks.CollectorSpec, error) {
	var out []tasks.CollectorSpec
	for i, c := range cs {
		if c.Name == "" {
			return nil, fmt.Errorf("%s %d: name required", where, i)
		}
		params := map[string]any{}
		for k, v := range c.Params {
			params[k] = v
		}
		if len(c.Yara) > 0 {
			var srcs []any
			if old, ok := params["yara"].([]any); ok {
				srcs = old
			}
			for _, y := range c.Yara {
				text, err := readBounded(f.include(y))
				if err != nil {
					return nil, fmt.Errorf("%s %s: yara: %w", where, c.Name, err)
				}
				srcs = append(srcs, map[string]any{"name": filepath.Base(y), "text": string(text)})
				if err := f.yaraIoC(y, text); err != nil {
					return nil, fmt.Errorf("%s %s: %w", where, c.Name, err)
				}
			}
			params["yara"] = srcs
		}
		spec := tasks.CollectorSpec{Name: c.Name}
		if len(params) > 0 {
			raw, err := json.Marshal(params)
			if err != nil {
				return nil, fmt.Errorf("%s %s: params: %w", where, c.Name, err)
			}
			spec.Params = raw
		}
		out = append(out, spec)
	}
	return out, nil
}

// yaraIoC takes the YARA file at p (relative to the hunt file) as an
// indicator, once: the collector scans with the rules, and the indicator
// makes the node report their matches as detections (severity from the
// rules' severity meta, else high).
func (f *File) yaraIoC(p string, text []byte) error {
	key := f.include(p)
	if f.yaraSeen[key] {
		return nil
	}
	imp, err := intel.ImportYARA(filepath.Base(p), bytes.NewReader(text))
	if err != nil {
		return fmt.Errorf("yara: %w", err)
	}
	if f.yaraSeen == nil {
		f.yaraSeen = map[string]bool{}
	}
	f.yaraSeen[key] = true
	for _, ioc := range imp.IoCs {
		ioc.Source = "hunt:" + f.Name + ":" + filepath.Base(p)
		f.yaraIoCs = append(f.yaraIoCs, ioc)
	}
	return nil
}

// Options complete a hunt built from a file.
type Options struct {
	// Now is the issue time; zero means the wall clock.
	Now time.Time

	// ReplyTo is the issuing node's peer ID.
	ReplyTo string

	// FleetSize is the number of live nodes the issuer sees, for a
	// sample given as a count.
	FleetSize int

	// Analyst labels the audit trail.
	Analyst string

	// Seal signs a forwarded hunt (see Chain.Forward). Without it forwarded
	// hunts are built and checked but not carried.
	Seal func(*tasks.Hunt) ([]byte, error)

	// nested is set while building a forwarded hunt.
	nested bool
}

// Hunt builds the wire task. It runs every check Validate can make
// without a node's collector registry.
func (f *File) Hunt(o Options) (*tasks.Hunt, error) {
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC()
	f.forwards, f.yaraIoCs, f.yaraSeen = nil, nil, nil
	deadline := time.Duration(f.Deadline)
	if deadline == 0 {
		deadline = DefaultDeadline
	}
	h := &tasks.Hunt{
		Header: tasks.Header{
			ID: tasks.NewID(now), Type: tasks.TypeHunt, IssuedAt: now,
			NotAfter: now.Add(deadline), ReplyTo: o.ReplyTo, Analyst: o.Analyst,
			Selector: tasks.Selector{Expr: f.Selector.Expr, Sample: f.Selector.Sample,
				FleetSize: o.FleetSize, AlwaysHighValue: f.Selector.AlwaysHighValue},
		},
		Root: f.Root, MaxRows: f.MaxRows, ReturnRecords: f.ReturnRecords,
		Budget: tasks.Budget{ReadBytesPerSec: f.Budget.ReadBytesPerSec,
			MaxRecords: f.Budget.MaxRecords, WallTime: time.Duration(f.Budget.WallTime),
			Nice: f.Budget.Nice},
		Every: time.Duration(f.Every),
	}
	var err error
	if h.Collectors, err = f.specs(f.Collectors, "collector"); err != nil {
		return nil, err
	}
	if len(h.Collectors) == 0 {
		return nil, errors.New("collectors: the hunt names none")
	}
	for _, c := range f.Chains {
		specs, err := f.specs(c.Collect, "chain "+c.Name+" collector")
		if err != nil {
			return nil, err
		}
		w := tasks.ChainWhen(c.When)
		ch := tasks.Chain{Name: c.Name, When: w, Collect: specs,
			Derive: c.Derive, MaxDepth: c.MaxDepth, PerMinute: c.PerMinute}
		if c.Forward != "" {
			if ch.Forward, err = f.forward(c, o, now); err != nil {
				return nil, err
			}
		}
		h.Chains = append(h.Chains, ch)
	}
	for _, c := range f.IoCs {
		h.IoCs = append(h.IoCs, tasks.IoC{Type: c.Type, Value: c.Value, Severity: c.Severity,
			Tags: c.Tags, Source: "hunt:" + f.Name})
	}
	h.IoCs = append(h.IoCs, f.loaded...)
	h.IoCs = append(h.IoCs, f.yaraIoCs...) // read by specs, of collectors and chains
	if _, err := intel.Compile(h.IoCs, intel.CompileOptions{Now: now}); err != nil {
		return nil, fmt.Errorf("iocs: %w", err)
	}
	for _, r := range f.Rules {
		h.Rules = append(h.Rules, tasks.Rule{Name: r.Name, Expr: r.When, Severity: r.Severity,
			Tags: r.Tags})
	}
	if err := tasks.ValidateRules(h.Rules); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	if err := tasks.ValidateChains(h.Chains); err != nil {
		return nil, fmt.Errorf("chains: %w", err)
	}
	if err := h.Selector.Validate(); err != nil {
		return nil, err
	}
	if err := tasks.ValidateEvery(h.Every, h.Header); err != nil {
		return nil, err
	}
	return h, nil
}

// forward builds, checks and (with o.Seal) signs a chain's forwarded hunt.
// Without Seal it returns a placeholder so the chain still validates.
func (f *File) forward(c Chain, o Options, now time.Time) ([]byte, error) {
	if o.nested {
		return nil, fmt.Errorf("chain %s: a forwarded hunt may not forward again", c.Name)
	}
	sub, err := Load(f.include(c.Forward))
	if err != nil {
		return nil, fmt.Errorf("chain %s: forward: %w", c.Name, err)
	}
	so := o
	so.nested, so.Now = true, now
	fh, err := sub.Hunt(so)
	if err != nil {
		return nil, fmt.Errorf("chain %s: forward %s: %w", c.Name, c.Forward, err)
	}
	f.forwards = append(f.forwards, fh)
	if o.Seal == nil {
		return []byte("unsigned"), nil
	}
	return o.Seal(fh)
}

// Forwards returns the forwarded hunts the last Hunt or Validate call
// built, in the order of the chains that carry them, so that the analyst
// can be told their task IDs: their answers are kept under those IDs.
func (f *File) Forwards() []*tasks.Hunt { return slices.Clone(f.forwards) }

// Checker validates what only a node can: collector names and
// parameters, and CEL conditions. node.ValidateHunt satisfies it.
type Checker func(h *tasks.Hunt) error

// Validate builds the hunt as Hunt does and, when check is set, applies
// it. A sample given as a count needs fleetSize (the nodes the issuer
// sees); with fleetSize 0 a count is checked only for form.
func (f *File) Validate(fleetSize int, check Checker) (*tasks.Hunt, error) {
	fs := fleetSize
	if fs <= 0 && f.Selector.Sample != "" && !strings.HasSuffix(f.Selector.Sample, "%") {
		fs = 1 << 30
	}
	h, err := f.Hunt(Options{FleetSize: fs, ReplyTo: "validate"})
	if err != nil {
		return nil, err
	}
	if check != nil {
		for _, fh := range f.forwards {
			if err := check(fh); err != nil {
				return nil, fmt.Errorf("forwarded hunt: %w", err)
			}
		}
		if err := check(h); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// CollectorNames lists the collectors a hunt uses, chains included.
func CollectorNames(h *tasks.Hunt) []string {
	var out []string
	for _, c := range h.Collectors {
		out = append(out, c.Name)
	}
	for _, ch := range h.Chains {
		for _, c := range ch.Collect {
			out = append(out, c.Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
