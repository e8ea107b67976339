package intel

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/huntmesh/huntmesh/tasks"
)

// MaxImportBytes caps what one import reads. Feeds of a few hundred
// thousand indicators stay well under it; past it the import is refused
// rather than cut, so that nothing is half-imported.
const MaxImportBytes = 64 << 20

// maxSkipDetails caps the Skip entries one import lists; past it skips are
// still counted in Meta.Skipped.
const maxSkipDetails = 1000

// DefaultSeverity is given to indicators whose source says nothing about
// severity.
const DefaultSeverity = "medium"

// Import is the outcome of reading one intelligence file.
type Import struct {
	// IoCs are the indicators taken, normalised and deduplicated.
	IoCs []tasks.IoC

	// Skipped lists what was left out and why (the first 1000).
	Skipped []Skip

	// Meta summarises the import.
	Meta Meta

	// Withdrawn are indicators the source revoked or let expire (STIX
	// revoked and valid_until), by type and value only: a set holding
	// them from an earlier import should remove them. None of them is
	// among IoCs: an indicator another object of the source still gives
	// is not withdrawn.
	Withdrawn []tasks.IoC
}

// Skip is one thing an importer left out.
type Skip struct {
	// What names the thing by its type in the source format: a pattern
	// property ("email-message:subject"), a MISP attribute type, a CSV type.
	What string

	// Reason says why it was left out.
	Reason string

	// Where locates it: an object id, an attribute uuid, a line.
	Where string
}

// Meta summarises an import.
type Meta struct {
	// Format is stix, misp, csv or yara.
	Format string

	// Name identifies the source: a bundle id, an event's info, a file name.
	Name string

	// Taken counts indicators taken per source type (pattern property,
	// attribute type, CSV type, YARA rule).
	Taken map[string]int

	// Skipped counts what was left out per source type.
	Skipped map[string]int
}

// String is a one-line summary such as "stix bundle--x: took 7 (...)".
func (m Meta) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: took %d", m.Format, m.Name, total(m.Taken))
	writeCounts(&b, m.Taken)
	fmt.Fprintf(&b, ", skipped %d", total(m.Skipped))
	writeCounts(&b, m.Skipped)
	return b.String()
}

func total(c map[string]int) int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

func writeCounts(b *strings.Builder, c map[string]int) {
	if len(c) == 0 {
		return
	}
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b.WriteString(" (")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(b, "%s %d", k, c[k])
	}
	b.WriteString(")")
}

// collector gathers an import's indicators and skips.
type collector struct {
	imp   Import
	index map[string]int // Key -> position in imp.IoCs

	withdrawn []tasks.IoC // candidates for Import.Withdrawn
}

// finishWithdrawn keeps the withdrawn indicators that nothing taken gives,
// once each, as Import.Withdrawn.
func (c *collector) finishWithdrawn() {
	seen := map[string]bool{}
	for _, w := range c.withdrawn {
		key := w.Type + "\x00" + w.Value
		if _, taken := c.index[key]; taken || seen[key] {
			continue
		}
		seen[key] = true
		c.imp.Withdrawn = append(c.imp.Withdrawn, tasks.IoC{Type: w.Type, Value: w.Value})
	}
}

func newCollector(format string) *collector {
	return &collector{
		imp: Import{Meta: Meta{Format: format, Taken: map[string]int{},
			Skipped: map[string]int{}}},
		index: map[string]int{},
	}
}

// take normalises and adds ioc, merging it into an earlier duplicate; an
// invalid indicator becomes a skip.
func (c *collector) take(what, where string, ioc tasks.IoC) {
	n, err := Normalize(ioc, Limits{})
	if err != nil {
		c.skip(what, where, err.Error())
		return
	}
	if n.Severity == "" {
		n.Severity = DefaultSeverity
	}
	c.imp.Meta.Taken[what]++
	key := n.Type + "\x00" + n.Value
	if i, ok := c.index[key]; ok {
		c.imp.IoCs[i] = mergeIoC(c.imp.IoCs[i], n)
		return
	}
	c.index[key] = len(c.imp.IoCs)
	c.imp.IoCs = append(c.imp.IoCs, n)
}

// skip records something left out.
func (c *collector) skip(what, where, reason string) {
	c.imp.Meta.Skipped[what]++
	if len(c.imp.Skipped) < maxSkipDetails {
		c.imp.Skipped = append(c.imp.Skipped, Skip{What: what, Reason: reason, Where: where})
	}
}

// readBounded reads all of r up to MaxImportBytes.
func readBounded(r io.Reader, what string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxImportBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if len(data) > MaxImportBytes {
		return nil, fmt.Errorf("read %s: over %d bytes", what, MaxImportBytes)
	}
	return data, nil
}

// lineAt is the 1-based line of byte offset off in data.
func lineAt(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	return bytes.Count(data[:off], []byte("\n")) + 1
}

// addTag appends t to tags unless present or empty.
func addTag(tags []string, t string) []string {
	if t == "" || slices.Contains(tags, t) {
		return tags
	}
	return append(tags, t)
}
