package intel

import (
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

// CompileOptions steer Compile.
type CompileOptions struct {
	// Now decides which indicators have expired: one whose Expires is not
	// after Now is left out. Zero means the wall clock at compile time.
	Now time.Time

	// Limits bound each indicator; zero fields take DefaultLimits.
	Limits Limits

	// SkipInvalid keeps compiling past malformed indicators and lists them
	// in Matcher.Rejected. Without it the first one fails Compile.
	SkipInvalid bool
}

// Rejection is an indicator Compile left out, and why.
type Rejection struct {
	// IoC is the indicator as it was given.
	IoC tasks.IoC

	// Reason says what is wrong with it.
	Reason string
}

// Matcher checks records against a compiled indicator set. It is
// immutable once built and safe for concurrent use.
//
// Which record fields each indicator type checks:
//
//	ip, cidr     remote_address, source_address, caller_address,
//	             src_address, dst_address. Never local_address: that is
//	             the host's own address and would flag every listener.
//	port         remote_port, dst_port; "addr:port" needs the pair
//	             remote_address+remote_port or dst_address+dst_port.
//	process      name (process records), process_name, parent_name, and
//	             the base name of exe, process_exe, parent_exe, image.
//	cmdline      cmdline, command (persistence, auth); ASCII case folded.
//	cmdline-re   cmdline, command; RE2, case as the expression says.
//	md5/sha1     md5 / sha1.
//	sha256       sha256, exe_sha256.
//	filename     name (file, persistence records), else the base of path;
//	             also the base name of path-like words in cmdline,
//	             command and message, so an executed script is seen.
//	path         path, exe, process_exe, parent_exe, image.
//	domain       domain, query, the host of url, and host-like words in
//	             cmdline, command and message; subdomains match too.
//	url          url, and URL-like words (with "://") in cmdline, command
//	             and message, after normalisation.
//	yara         yara (the rule names a scanner reported), by rule name.
//
// File names, paths and process names are compared case-insensitively.
type Matcher struct {
	iocs     []tasks.IoC
	rejected []Rejection
	expiry   time.Time

	md5, sha1, sha256 map[string]int32

	ips      map[netip.Addr]int32
	prefixes map[netip.Prefix]int32
	bits4    []int // prefix lengths present, IPv4
	bits6    []int // prefix lengths present, IPv6

	ports     map[uint16]int32
	addrPorts map[netip.AddrPort]int32

	domains map[string]int32
	urls    map[string]int32

	fileExact map[string]int32
	fileGlobs globIndex
	pathExact map[string]int32
	pathGlobs globIndex

	procs map[string]int32

	// The automaton finds cmdline substrings and the required literals of
	// expressions. acIoC maps a pattern to its indicator, or for a
	// literal to -(index into regexes)-1.
	ac      *acMatcher
	acIoC   []int32
	regexes []regex
	always  []int32 // expressions without a usable literal, run always

	yaraRules   map[string]int32
	yaraSources []tasks.IoC
	yaraBytes   int
}

// glob is one file name or path pattern with meta characters.
type glob struct {
	pattern string
	id      int32
}

// regex is one compiled cmdline-re indicator.
type regex struct {
	re *regexp.Regexp
	id int32
}

// Compile builds a matcher from iocs. Duplicates (same type and normalised
// value) collapse into one indicator carrying the union of their tags and
// the highest severity. Expired indicators are left out.
func Compile(iocs []tasks.IoC, opts CompileOptions) (*Matcher, error) {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	lim := opts.Limits.orDefault()
	m := &Matcher{}
	index := make(map[string]int32, len(iocs))
	var acPatterns []string

	for i, raw := range iocs {
		if !raw.Expires.IsZero() && !raw.Expires.After(now) {
			continue
		}
		ioc, err := Normalize(raw, lim)
		if err != nil {
			if !opts.SkipInvalid {
				return nil, fmt.Errorf("compile ioc %d: %w", i, err)
			}
			m.rejected = append(m.rejected, Rejection{IoC: raw, Reason: err.Error()})
			continue
		}

		// Merge duplicates into the first occurrence.
		key := ioc.Type + "\x00" + ioc.Value
		if id, dup := index[key]; dup {
			m.iocs[id] = mergeIoC(m.iocs[id], ioc)
			continue
		}
		id := int32(len(m.iocs))
		if err := m.add(id, ioc, lim, &acPatterns); err != nil {
			if !opts.SkipInvalid {
				return nil, fmt.Errorf("compile ioc %d: %w", i, err)
			}
			m.rejected = append(m.rejected, Rejection{IoC: raw, Reason: err.Error()})
			continue
		}
		index[key] = id
		m.iocs = append(m.iocs, ioc)
		if !ioc.Expires.IsZero() && (m.expiry.IsZero() || ioc.Expires.Before(m.expiry)) {
			m.expiry = ioc.Expires
		}
	}

	if len(acPatterns) > 0 {
		m.ac = newACMatcher(acPatterns)
	}
	slices.Sort(m.bits4)
	slices.Sort(m.bits6)
	return m, nil
}

// add indexes one normalised indicator under id.
func (m *Matcher) add(id int32, ioc tasks.IoC, lim Limits, acPatterns *[]string) error {
	v := ioc.Value
	switch ioc.Type {
	case tasks.IoCMD5:
		setIn(&m.md5, v, id)
	case tasks.IoCSHA1:
		setIn(&m.sha1, v, id)
	case tasks.IoCSHA256:
		setIn(&m.sha256, v, id)
	case tasks.IoCIP:
		setIn(&m.ips, netip.MustParseAddr(v), id)
	case tasks.IoCCIDR:
		p := netip.MustParsePrefix(v)
		setIn(&m.prefixes, p, id)
		if p.Addr().Is4() {
			m.bits4 = addBits(m.bits4, p.Bits())
		} else {
			m.bits6 = addBits(m.bits6, p.Bits())
		}
	case tasks.IoCPort:
		if n, err := strconv.Atoi(v); err == nil {
			setIn(&m.ports, uint16(n), id)
		} else {
			setIn(&m.addrPorts, netip.MustParseAddrPort(v), id)
		}
	case tasks.IoCDomain:
		setIn(&m.domains, v, id)
	case tasks.IoCURL:
		setIn(&m.urls, v, id)
	case tasks.IoCFileName:
		if isGlob(v) {
			m.fileGlobs.add(glob{v, id})
		} else {
			setIn(&m.fileExact, v, id)
		}
	case tasks.IoCPath:
		if isGlob(v) {
			m.pathGlobs.add(glob{v, id})
		} else {
			setIn(&m.pathExact, v, id)
		}
	case tasks.IoCProcess:
		setIn(&m.procs, v, id)
	case tasks.IoCCmdline:
		*acPatterns = append(*acPatterns, v)
		m.acIoC = append(m.acIoC, id)
	case tasks.IoCCmdlineRE:
		if len(m.regexes) >= lim.MaxRegexes {
			return invalid(ioc.Type, "over %d expressions in one set", lim.MaxRegexes)
		}
		tree, err := compileRegex(v, lim)
		if err != nil {
			return err
		}
		re, err := regexp.Compile(v)
		if err != nil {
			return invalid(ioc.Type, "%v", err)
		}
		x := int32(len(m.regexes))
		m.regexes = append(m.regexes, regex{re, id})
		if lit := requiredLiteral(tree.Simplify()); len(lit) >= minLiteral {
			*acPatterns = append(*acPatterns, asciiLower(lit))
			m.acIoC = append(m.acIoC, -x-1)
		} else {
			m.always = append(m.always, x)
		}
	case tasks.IoCYARA:
		if m.yaraBytes+len(v) > lim.MaxYARABytes {
			return invalid(ioc.Type, "%d bytes of rules would take the set past %d bytes of YARA",
				len(v), lim.MaxYARABytes)
		}
		m.yaraBytes += len(v)
		for _, name := range yaraRuleNames(v) {
			setIn(&m.yaraRules, name, id)
		}
		m.yaraSources = append(m.yaraSources, ioc)
	}
	return nil
}

// setIn stores id under k, creating the map on first use.
func setIn[K comparable](mp *map[K]int32, k K, id int32) {
	if *mp == nil {
		*mp = make(map[K]int32)
	}
	if _, ok := (*mp)[k]; !ok {
		(*mp)[k] = id
	}
}

// addBits records a prefix length once.
func addBits(bits []int, b int) []int {
	if slices.Contains(bits, b) {
		return bits
	}
	return append(bits, b)
}

// isGlob reports whether a pattern has path.Match meta characters.
func isGlob(p string) bool {
	return strings.ContainsAny(p, `*?[\`)
}

// severityRank orders severities; unknown ones rank lowest.
func severityRank(s string) int {
	switch strings.ToLower(s) {
	case "low":
		return 1
	case "medium":
		return 2
	case "high":
		return 3
	case "critical":
		return 4
	}
	return 0
}

// mergeIoC folds b into a: union of tags, highest severity, latest expiry
// (zero, meaning never, wins).
func mergeIoC(a, b tasks.IoC) tasks.IoC {
	if severityRank(b.Severity) > severityRank(a.Severity) {
		a.Severity = b.Severity
	}
	for _, t := range b.Tags {
		if !slices.Contains(a.Tags, t) {
			a.Tags = append(slices.Clip(a.Tags), t)
		}
	}
	if a.Expires.IsZero() || b.Expires.IsZero() {
		a.Expires = time.Time{}
	} else if b.Expires.After(a.Expires) {
		a.Expires = b.Expires
	}
	return a
}

// Len is the number of active indicators compiled in.
func (m *Matcher) Len() int { return len(m.iocs) }

// IoCs returns the active indicators in canonical form.
func (m *Matcher) IoCs() []tasks.IoC { return slices.Clone(m.iocs) }

// Rejected lists the indicators left out as malformed (with SkipInvalid).
func (m *Matcher) Rejected() []Rejection { return slices.Clone(m.rejected) }

// NextExpiry is the earliest Expires among the active indicators, zero if
// none expire. A caller should compile again after it passes.
func (m *Matcher) NextExpiry() time.Time { return m.expiry }

// YARASources returns the active YARA indicators, for the file and memory
// scanners to compile. The matcher itself only maps the rule names those
// scanners report (record field "yara") back to these indicators.
func (m *Matcher) YARASources() []tasks.IoC { return slices.Clone(m.yaraSources) }

// sortDetections orders detections by field, type and value, so output is
// stable whatever the order the record's fields were visited in.
func sortDetections(d []tasks.Detection) {
	sort.Slice(d, func(i, j int) bool {
		a, b := &d[i], &d[j]
		if a.Field != b.Field {
			return a.Field < b.Field
		}
		if a.IoCType != b.IoCType {
			return a.IoCType < b.IoCType
		}
		return a.IoCValue < b.IoCValue
	})
}

// baseName is the last element of a Unix or Windows path.
func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// matchGlobs reports each glob matching s.
func matchGlobs(globs []glob, s string, hit func(id int32)) {
	for _, g := range globs {
		if ok, _ := path.Match(g.pattern, s); ok {
			hit(g.id)
		}
	}
}
