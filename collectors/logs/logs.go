// Package logs is the `logs` collector: it ingests host logs (auth.log,
// secure, syslog, messages, auditd, the systemd journal) and exported logs
// (EDR alerts, Sysmon as log shippers forward it, Sysmon for Linux XML,
// Windows Security events, Azure Activity Log, flow logs, or any NDJSON with
// a field mapping) into the record kinds of package collectors, so that
// matching and queries treat ingested and live evidence alike.
//
// Every file is streamed: lines are capped at MaxLine bytes, JSON documents
// are decoded element by element, and reads are paid for with env.WaitRead.
// Every event in a file ends up either as a record or as a counted skip in
// env.Stats with a reason and a "file:line" sample.
package logs

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/tasks"
)

// Name is the collector's name in hunts.
const Name = "logs"

// MaxLine is the longest line read from a text or NDJSON log. A longer line
// is skipped and counted as "line too long"; one MiB holds any sane log
// line, including Windows events with long messages.
const MaxLine = 1 << 20

// maxObject bounds one element of a JSON document ({"records": [...]} or a
// top-level array), so that a hostile file cannot make the decoder buffer
// without limit.
const maxObject = 16 << 20

// defaultJournalWindow is how far back the journal is read when a hunt
// gives no "since": a live journal may hold months, and a hunt that wants
// more says so.
const defaultJournalWindow = 24 * time.Hour

// Formats accepted in Source.Format.
const (
	FormatAuto      = "auto"
	FormatAuth      = "auth"
	FormatSyslog    = "syslog"
	FormatAuditd    = "auditd"
	FormatJournal   = "journal"
	FormatNDJSON    = "ndjson"
	FormatJSON      = "json"
	FormatEVTX      = "evtx"
	FormatSysmonXML = "sysmon-xml"
	FormatEDR       = "edr"
	FormatSysmon    = "sysmon"
	FormatAzure     = "azure-activity"
	FormatFlow      = "flow"
)

// formats maps each accepted format to the built-in mapping it implies
// ("" when the format is read without one).
var formats = map[string]string{
	FormatAuto: "", FormatAuth: "", FormatSyslog: "", FormatAuditd: "",
	FormatJournal: MapJournal, FormatNDJSON: "", FormatJSON: "",
	FormatEVTX: "", FormatSysmonXML: "", FormatEDR: MapEDR,
	FormatSysmon: MapWindows, FormatAzure: MapAzure, FormatFlow: MapFlow,
}

// Params are the collector's parameters.
type Params struct {
	// Sources lists the files to read. Empty means the default host logs.
	Sources []Source `json:"sources,omitempty"`

	// Since and Until bound event times; events outside are counted as
	// skipped "outside window". Zero means unbounded.
	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until,omitzero"`

	// Journal asks for the systemd journal (only read when Root is "/").
	// Unset means: read it when no sources are given and journalctl exists.
	Journal *bool `json:"journal,omitempty"`

	// Year is the year given to syslog timestamps, which carry none. Zero
	// means the year of the file's modification time.
	Year int `json:"year,omitempty"`

	// Timezone is the IANA zone of zone-less timestamps; default UTC.
	Timezone string `json:"timezone,omitempty"`
}

// Source is one log file to ingest.
type Source struct {
	// Path is the file's path on the host; it is read under env.Root.
	Path string `json:"path"`

	// Format is one of the Format constants; "" means auto.
	Format string `json:"format,omitempty"`

	// Mapping is a built-in mapping name ("edr", "windows", ...) as a JSON
	// string, or an inline Mapping object (also accepted as a string
	// holding JSON).
	Mapping json.RawMessage `json:"mapping,omitempty"`

	// Host overrides the host the records are attributed to.
	Host string `json:"host,omitempty"`
}

// defaultSources are read, when present, if a hunt names no sources.
var defaultSources = []string{
	"/var/log/auth.log", "/var/log/secure", "/var/log/syslog", "/var/log/messages",
}

// Collector ingests logs. The zero value is ready to use.
type Collector struct {
	// JournalCmd is the journalctl binary; "" means "journalctl" from PATH.
	JournalCmd string
}

// New returns the logs collector.
func New() *Collector { return &Collector{} }

// Name returns "logs".
func (c *Collector) Name() string { return Name }

// plan is validated parameters with mappings resolved.
type plan struct {
	Params
	mappers []mapper // one per source
	loc     *time.Location
}

// parse decodes and checks params.
func parse(raw json.RawMessage) (*plan, error) {
	p := &plan{loc: time.UTC}
	if len(strings.TrimSpace(string(raw))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p.Params); err != nil {
			return nil, fmt.Errorf("decode logs params: %w", err)
		}
	}
	if !p.Since.IsZero() && !p.Until.IsZero() && p.Until.Before(p.Since) {
		return nil, fmt.Errorf("logs params: until %s is before since %s",
			p.Until.Format(time.RFC3339), p.Since.Format(time.RFC3339))
	}
	if p.Year < 0 || p.Year > 9999 {
		return nil, fmt.Errorf("logs params: year %d out of range", p.Year)
	}
	if p.Timezone != "" {
		loc, err := time.LoadLocation(p.Timezone)
		if err != nil {
			return nil, fmt.Errorf("logs params: timezone: %w", err)
		}
		p.loc = loc
	}
	for i, s := range p.Sources {
		if strings.TrimSpace(s.Path) == "" {
			return nil, fmt.Errorf("logs params: sources[%d]: empty path", i)
		}
		if s.Format == "" {
			p.Sources[i].Format = FormatAuto
		}
		implied, ok := formats[p.Sources[i].Format]
		if !ok {
			return nil, fmt.Errorf("logs params: sources[%d]: unknown format %q", i, s.Format)
		}
		m, err := resolveMapping(s.Mapping, implied)
		if err != nil {
			return nil, fmt.Errorf("logs params: sources[%d]: %w", i, err)
		}
		p.mappers = append(p.mappers, m)
	}
	return p, nil
}

// Validate checks params: known formats, resolvable mappings whose fields
// belong to the record schema, and a sane time window.
func (c *Collector) Validate(params json.RawMessage) error {
	_, err := parse(params)
	return err
}

// Collect reads every source in turn. Problems with one file (missing,
// unreadable, not a regular file, bad lines) are counted in env.Stats; the
// error returned is ctx's or Emit's.
func (c *Collector) Collect(ctx context.Context, env *collectors.Env,
	params json.RawMessage) error {
	p, err := parse(params)
	if err != nil {
		return err
	}
	start := time.Now()

	// Explicit sources are read as given; defaults only when present.
	sources, mappers := p.Sources, p.mappers
	if len(sources) == 0 {
		for _, path := range defaultSources {
			if _, err := os.Lstat(underRoot(env.Root, path)); err == nil {
				sources = append(sources, Source{Path: path, Format: FormatAuto})
				mappers = append(mappers, nil)
			}
		}
	}
	for i, src := range sources {
		if err := ctx.Err(); err != nil {
			return err
		}
		in := &ingest{ctx: ctx, env: env, p: p, src: src, mapper: mappers[i]}
		if err := in.file(); err != nil {
			return err
		}
	}

	// The journal is live-host only: a fixture root has no journal daemon.
	if c.wantJournal(env, p) {
		if err := c.journal(ctx, env, p); err != nil {
			return err
		}
	}
	env.Logger.Debug("logs ingested", "sources", len(sources),
		"emitted", env.Stats.Emitted(), "dur", time.Since(start))
	return nil
}

// wantJournal decides whether to read the journal for this run.
func (c *Collector) wantJournal(env *collectors.Env, p *plan) bool {
	if filepath.Clean(env.Root) != "/" {
		return false
	}
	if p.Journal != nil {
		return *p.Journal
	}
	return len(p.Sources) == 0
}

// underRoot joins a host path onto root.
func underRoot(root, path string) string {
	return filepath.Join(root, filepath.Clean("/"+path))
}

// excluded reports whether host path lies in one of env.Exclude.
func excluded(env *collectors.Env, path string) bool {
	clean := filepath.Clean("/" + path)
	for _, ex := range env.Exclude {
		ex = filepath.Clean(ex)
		if clean == ex || strings.HasPrefix(clean, strings.TrimSuffix(ex, "/")+"/") {
			return true
		}
	}
	return false
}

// emit applies the time window and hands rec on. It is the single exit of
// every parser, so the accounting rule (record or counted skip) holds.
func (in *ingest) emit(rec tasks.Record, where string) error {
	return in.emitAt(rec, func() string { return where })
}

// emitAt is emit with the "file:line" sample built only when a skip needs
// it, which keeps formatting off the hot path of large text logs.
func (in *ingest) emitAt(rec tasks.Record, where func() string) error {
	if rec.Time.IsZero() {
		in.env.Stats.Skip("no time", where())
		return nil
	}
	rec.Time = rec.Time.UTC()
	if (!in.p.Since.IsZero() && rec.Time.Before(in.p.Since)) ||
		(!in.p.Until.IsZero() && rec.Time.After(in.p.Until)) {
		in.env.Stats.Skip("outside window", where())
		return nil
	}
	rec.Source = in.src.Path
	if in.src.Host != "" {
		// NB: Env.Emit stamps env.Host over this; see the package report.
		rec.Host = in.src.Host
	}
	in.records++
	return in.env.Emit(rec)
}
