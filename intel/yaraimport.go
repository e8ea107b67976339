package intel

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/huntmesh/huntmesh/collectors/yarascan"
	"github.com/huntmesh/huntmesh/tasks"
)

// validateYARA compiles src with libyara and reports the first error.
func validateYARA(name, src string) error {
	rules, err := yarascan.Compile([]yarascan.Source{{Name: name, Text: src}})
	if err != nil {
		var ce *yarascan.CompileError
		if errors.As(err, &ce) {
			return fmt.Errorf("yara source %s line %d: %s", name, ce.Line, ce.Message)
		}
		return fmt.Errorf("compile yara source %s: %w", name, err)
	}
	rules.Destroy()
	return nil
}

// severityMeta finds meta lines such as severity = "high".
var severityMeta = regexp.MustCompile(`(?m)^\s*(?:severity|threat_level)\s*=\s*"?([A-Za-z]+)"?`)

// ImportYARA reads one YARA file and takes it as a single IoC whose value
// is the whole source, once libyara has compiled it. One IoC per file keeps
// private rules, imports and rule references intact. A file too large for
// one intel update is cut at rule boundaries into IoCs that each compile
// alone, with the file's imports in front; detections still name
// the rule that matched, since the matcher maps every rule name declared in
// the source back to it. Severity is the highest "severity" meta value, or
// "high" when none is given (a YARA hit on a file is strong evidence).
func ImportYARA(name string, r io.Reader) (Import, error) {
	data, err := readBounded(r, "yara file "+name)
	if err != nil {
		return Import{}, err
	}
	lim := DefaultLimits()
	if len(data) > lim.MaxYARALen {
		return Import{}, fmt.Errorf("import yara file %s: %d bytes, over %d", name,
			len(data), lim.MaxYARALen)
	}
	src := string(data)
	if err := validateYARA(name, src); err != nil {
		return Import{}, fmt.Errorf("import yara file: %w", err)
	}

	c := newCollector("yara")
	c.imp.Meta.Name = name
	sev := ""
	for _, m := range severityMeta.FindAllStringSubmatch(src, -1) {
		if s := strings.ToLower(m[1]); severityRank(s) > severityRank(sev) {
			sev = s
		}
	}
	if sev == "" {
		sev = "high"
	}
	names := yaraRuleNames(src)
	parts := []string{src}
	if jsonLen(src) > yaraChunkBytes {
		// Too large for one intel update: cut it at rule boundaries into
		// parts that each compile alone. Rules that need a rule in another
		// part keep the file whole, and sending it says it is too large.
		if cut, ok := splitYARA(src); ok && compilesAlone(name, cut) {
			parts = cut
		}
	}
	for i, p := range parts {
		where := name
		if len(parts) > 1 {
			where = fmt.Sprintf("%s part %d of %d", name, i+1, len(parts))
		}
		c.take("yara", where, tasks.IoC{
			Type: tasks.IoCYARA, Value: p, Severity: sev, Source: "yara:" + name,
		})
	}
	if len(c.imp.IoCs) == len(parts) {
		c.imp.Meta.Taken = map[string]int{"rule": len(names)}
	}
	return c.imp, nil
}

// compilesAlone reports whether libyara takes each part on its own.
func compilesAlone(name string, parts []string) bool {
	for i, p := range parts {
		if validateYARA(fmt.Sprintf("%s part %d", name, i+1), p) != nil {
			return false
		}
	}
	return true
}
