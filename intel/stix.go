package intel

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

// stixObject holds the fields of the STIX objects the importer reads.
type stixObject struct {
	Type        string     `json:"type"`
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Pattern     string     `json:"pattern"`
	PatternType string     `json:"pattern_type"`
	ValidFrom   *time.Time `json:"valid_from"`
	ValidUntil  *time.Time `json:"valid_until"`
	Revoked     bool       `json:"revoked"`
	Labels      []string   `json:"labels"`
	Confidence  *int       `json:"confidence"`

	RelationshipType string `json:"relationship_type"`
	SourceRef        string `json:"source_ref"`
	TargetRef        string `json:"target_ref"`

	ExternalReferences []struct {
		SourceName string `json:"source_name"`
		ExternalID string `json:"external_id"`
	} `json:"external_references"`
}

// stixBundle is a bundle, or a lone object when Objects is empty.
type stixBundle struct {
	Type    string            `json:"type"`
	ID      string            `json:"id"`
	Objects []json.RawMessage `json:"objects"`
}

// ImportSTIX reads a STIX 2.1 (or 2.0) bundle and turns its indicators into
// IoCs. Revoked indicators and those whose valid_until is not after now are
// skipped, and what they would give is listed in Import.Withdrawn; others
// carry valid_until as Expires. Threat actors, malware,
// tools, campaigns and ATT&CK techniques linked by "indicates", "uses" and
// "attributed-to" relationships become tags ("actor:CryptoMinersGroup",
// "T1496"). Severity comes from a severity label or the confidence.
//
// A bundle that is not valid JSON, or an object whose fields have the wrong
// types, fails the whole import with an error naming the line or the
// object's index and id. A pattern that cannot be used is skipped with a
// reason.
func ImportSTIX(r io.Reader, now time.Time) (Import, error) {
	data, err := readBounded(r, "stix bundle")
	if err != nil {
		return Import{}, err
	}
	var b stixBundle
	if err := json.Unmarshal(data, &b); err != nil {
		return Import{}, jsonError(data, "stix bundle", err)
	}
	if b.Type != "bundle" {
		if b.Type == "" {
			return Import{}, fmt.Errorf("decode stix bundle: no \"type\": not a STIX document")
		}
		b.Objects = []json.RawMessage{data}
	}

	// Decode every object first, so a malformed one fails before anything
	// is taken.
	objs := make([]stixObject, len(b.Objects))
	byID := make(map[string]*stixObject, len(b.Objects))
	for i, raw := range b.Objects {
		if err := json.Unmarshal(raw, &objs[i]); err != nil {
			var probe struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(raw, &probe)
			return Import{}, fmt.Errorf("decode stix object %d (%s): %w", i, probe.ID, err)
		}
		if objs[i].Type == "" || objs[i].ID == "" {
			return Import{}, fmt.Errorf("decode stix object %d (%s): missing type or id",
				i, objs[i].ID)
		}
		byID[objs[i].ID] = &objs[i]
	}

	c := newCollector("stix")
	c.imp.Meta.Name = b.ID
	source := "stix"
	if b.ID != "" {
		source = "stix:" + b.ID
	}
	g := newStixGraph(objs, byID)
	for i := range objs {
		o := &objs[i]
		if o.Type != "indicator" {
			continue
		}
		c.indicator(o, g.tags(o.ID), source, now)
	}
	c.finishWithdrawn()
	return c.imp, nil
}

// withdraw notes the IoCs a revoked or expired indicator gave, so that a
// set which took them from an earlier copy of the feed can drop them.
func (c *collector) withdraw(o *stixObject, source string, now time.Time) {
	live := *o
	live.Revoked, live.ValidUntil = false, nil
	w := newCollector("stix")
	w.indicator(&live, nil, source, now)
	c.withdrawn = append(c.withdrawn, w.imp.IoCs...)
}

// indicator takes the IoCs of one indicator object.
func (c *collector) indicator(o *stixObject, tags []string, source string, now time.Time) {
	if o.Revoked {
		c.skip("indicator", o.ID, "revoked")
		c.withdraw(o, source, now)
		return
	}
	if o.ValidUntil != nil && !o.ValidUntil.After(now) {
		c.skip("indicator", o.ID, "expired at "+o.ValidUntil.UTC().Format(time.RFC3339))
		c.withdraw(o, source, now)
		return
	}
	base := tasks.IoC{Severity: stixSeverity(o), Source: source, Tags: tags}
	if o.ValidFrom != nil {
		base.FirstSeen = o.ValidFrom.UTC()
	}
	if o.ValidUntil != nil {
		base.Expires = o.ValidUntil.UTC()
	}

	switch o.PatternType {
	case "", "stix":
	case "yara":
		base.Type, base.Value = tasks.IoCYARA, o.Pattern
		if err := validateYARA(o.ID, o.Pattern); err != nil {
			c.skip("pattern_type yara", o.ID, err.Error())
			return
		}
		c.take("pattern_type yara", o.ID, base)
		return
	default:
		c.skip("pattern_type "+o.PatternType, o.ID, "only stix and yara patterns are used")
		return
	}

	if o.Pattern == "" {
		c.skip("indicator", o.ID, "no pattern")
		return
	}
	tree, err := parseSTIXPattern(o.Pattern)
	if err != nil {
		c.skip("pattern", o.ID, err.Error())
		return
	}
	obs, joined := tree.leaves()
	if joined != "" && len(obs) > 1 {
		c.skip("pattern", o.ID, "observations joined by "+joined+
			" need correlation across records; not matched one record at a time")
		return
	}
	for _, ob := range obs {
		terms, err := ob.dnf()
		if err != nil {
			c.skip("pattern", o.ID, err.Error())
			continue
		}
		for _, term := range terms {
			c.stixTerm(term, o.ID, base)
		}
	}
}

// leaves lists the comparison expressions of the observations that are
// alternatives (OR), and names the first operator that joins observations
// in a way a one-record matcher cannot honour.
func (e *obsExpr) leaves() ([]*cmpExpr, string) {
	if e.Op == "" {
		return []*cmpExpr{e.Cmp}, ""
	}
	var out []*cmpExpr
	joined := ""
	if e.Op != "OR" {
		joined = e.Op
	}
	for _, k := range e.Kids {
		l, j := k.leaves()
		out = append(out, l...)
		if joined == "" {
			joined = j
		}
	}
	return out, joined
}

// stixTerm maps one AND-term of comparisons to IoCs.
func (c *collector) stixTerm(term []*stixComparison, id string, base tasks.IoC) {
	// "x_ref.type = 'ipv4-addr'" only restates what the value says.
	var kept []*stixComparison
	for _, cmp := range term {
		if p := cmp.Path.prop(); cmp.Op == "=" && !cmp.Negated && len(term) > 1 &&
			strings.HasSuffix(p, "_ref.type") {
			continue
		}
		kept = append(kept, cmp)
	}
	term = kept
	if len(term) == 1 {
		c.stixComparison(term[0], id, base)
		return
	}

	// A hash pins the file whatever else the term says.
	var hashes []*stixComparison
	var addr, port, name, dir *stixComparison
	var what []string
	for _, cmp := range term {
		what = append(what, cmp.Path.String())
		if cmp.Negated || cmp.Op != "=" && cmp.Op != "IN" {
			continue
		}
		switch p := cmp.Path; {
		case p.Type == "file" && len(p.Props) == 2 && p.Props[0] == "hashes":
			hashes = append(hashes, cmp)
		case p.Type == "network-traffic" && p.prop() == "dst_ref.value":
			addr = cmp
		case p.Type == "network-traffic" && p.prop() == "dst_port":
			port = cmp
		case p.Type == "file" && p.prop() == "name" && cmp.Op == "=":
			name = cmp
		case p.Type == "file" && p.prop() == "parent_directory_ref.path" && cmp.Op == "=":
			dir = cmp
		}
	}
	switch {
	case len(hashes) > 0:
		for _, h := range hashes {
			c.stixComparison(h, id, base)
		}
	case addr != nil && port != nil:
		c.stixAddrPorts(addr, port, id, base)
	case name != nil && dir != nil:
		ioc := base
		ioc.Type = tasks.IoCPath
		ioc.Value = strings.TrimRight(dir.Values[0].Text, `/\`) + "/" + name.Values[0].Text
		c.take("file:parent_directory_ref.path+name", id, ioc)
	default:
		c.skip(strings.Join(what, " AND "), id,
			"an AND of these properties cannot be matched as one indicator")
	}
}

// maxAddrPorts bounds the address:port indicators one AND of address and
// port lists may expand to.
const maxAddrPorts = 1000

// stixAddrPorts takes each address and port pair of a network-traffic
// term (either side may be an IN list). A destination named by a domain
// gives the domain alone, as records name where a host connected by
// address; a network cannot be paired with a port.
func (c *collector) stixAddrPorts(addr, port *stixComparison, id string, base tasks.IoC) {
	const what = "network-traffic:dst_ref.value+dst_port"
	if len(addr.Values)*len(port.Values) > maxAddrPorts {
		c.skip(what, id, fmt.Sprintf("%d addresses by %d ports is over %d indicators",
			len(addr.Values), len(port.Values), maxAddrPorts))
		return
	}
	for _, av := range addr.Values {
		a := strings.TrimSpace(av.Text)
		switch _, err := netip.ParseAddr(a); {
		case strings.Contains(a, "/"):
			c.skip(what, id, "a network "+a+" cannot be paired with a port")
			continue
		case err != nil:
			ioc := base
			ioc.Type, ioc.Value = tasks.IoCDomain, a
			c.take(what, id, ioc)
			continue
		}
		if strings.Contains(a, ":") {
			a = "[" + a + "]"
		}
		for _, pv := range port.Values {
			ioc := base
			ioc.Type, ioc.Value = tasks.IoCPort, a+":"+pv.Text
			c.take(what, id, ioc)
		}
	}
}

// stixComparison maps one comparison to IoCs, or skips it with a reason.
func (c *collector) stixComparison(cmp *stixComparison, id string, base tasks.IoC) {
	what := cmp.Path.String()
	if cmp.Negated {
		c.skip(what, id, "negated comparisons are not indicators")
		return
	}
	typ, reason := stixIoCType(cmp.Path)
	if typ == "" {
		c.skip(what, id, reason)
		return
	}
	for _, v := range cmp.Values {
		ioc := base
		ioc.Type = typ
		ioc.Value = v.Text
		switch cmp.Op {
		case "=", "IN":
			if typ == tasks.IoCCmdline {
				// Equality on the whole command line, not a substring.
				ioc.Type = tasks.IoCCmdlineRE
				ioc.Value = "^" + regexp.QuoteMeta(v.Text) + "$"
			}
			if typ == tasks.IoCIP && strings.Contains(v.Text, "/") {
				ioc.Type = tasks.IoCCIDR
			}
			if _, err := netip.ParseAddr(strings.TrimSpace(v.Text)); err != nil &&
				typ == tasks.IoCIP && cmp.Path.Type == "network-traffic" &&
				!strings.Contains(v.Text, "/") {
				// A destination may be a domain-name object.
				ioc.Type = tasks.IoCDomain
			}
			if typ == tasks.IoCPath && cmp.Path.Type == "directory" {
				// Anything directly in the directory.
				ioc.Value = strings.TrimRight(v.Text, `/\`) + "/*"
			}
		case "ISSUBSET":
			if typ != tasks.IoCIP {
				c.skip(what, id, "ISSUBSET is only used on addresses")
				return
			}
			ioc.Type = tasks.IoCCIDR
		case "MATCHES":
			if typ != tasks.IoCCmdline {
				c.skip(what, id, "MATCHES is only used on command lines")
				return
			}
			ioc.Type = tasks.IoCCmdlineRE
		case "LIKE":
			switch typ {
			case tasks.IoCCmdline:
				ioc.Type, ioc.Value = tasks.IoCCmdlineRE, likeToRegexp(v.Text)
			case tasks.IoCFileName, tasks.IoCProcess:
				ioc.Type, ioc.Value = tasks.IoCFileName, likeToGlob(v.Text)
				if typ == tasks.IoCProcess {
					c.skip(what, id, "LIKE on process names is not supported")
					return
				}
			default:
				c.skip(what, id, "LIKE is only used on command lines and file names")
				return
			}
		default:
			c.skip(what, id, "operator "+cmp.Op+" is not an indicator")
			return
		}
		c.take(what, id, ioc)
	}
}

// stixIoCType maps an object path to an IoC type, or says why not.
func stixIoCType(p stixPath) (string, string) {
	prop := p.prop()
	// Hashes of a file, or of a process's executable (image_ref in 2.1,
	// binary_ref in 2.0).
	n := len(p.Props)
	fileHash := p.Type == "file" && n == 2
	exeHash := p.Type == "process" && n == 3 &&
		(p.Props[0] == "image_ref" || p.Props[0] == "binary_ref")
	if (fileHash || exeHash) && p.Props[n-2] == "hashes" {
		switch strings.ToUpper(strings.ReplaceAll(p.Props[n-1], "-", "")) {
		case "SHA256":
			return tasks.IoCSHA256, ""
		case "SHA1":
			return tasks.IoCSHA1, ""
		case "MD5":
			return tasks.IoCMD5, ""
		}
		return "", "hash " + p.Props[n-1] + " is not collected"
	}
	switch p.Type {
	case "file":
		if prop == "name" {
			return tasks.IoCFileName, ""
		}
	case "ipv4-addr", "ipv6-addr":
		if prop == "value" {
			return tasks.IoCIP, ""
		}
	case "network-traffic":
		switch prop {
		case "dst_ref.value", "src_ref.value":
			return tasks.IoCIP, ""
		case "dst_port":
			return tasks.IoCPort, ""
		}
	case "domain-name":
		if prop == "value" {
			return tasks.IoCDomain, ""
		}
	case "url":
		if prop == "value" {
			return tasks.IoCURL, ""
		}
	case "directory":
		if prop == "path" {
			return tasks.IoCPath, ""
		}
	case "process":
		switch prop {
		case "name", "image_ref.name", "binary_ref.name", "parent_ref.name":
			// Process indicators are matched on parent names too.
			return tasks.IoCProcess, ""
		case "command_line":
			return tasks.IoCCmdline, ""
		}
	default:
		return "", "object type " + p.Type + " has no matching record field"
	}
	return "", "property " + prop + " of " + p.Type + " has no matching record field"
}

// likeToRegexp turns a SQL LIKE pattern into an anchored RE2 expression.
func likeToRegexp(s string) string {
	var b strings.Builder
	b.WriteString("^")
	for _, r := range s {
		switch r {
		case '%':
			b.WriteString(".*")
		case '_':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return b.String()
}

// likeToGlob turns a SQL LIKE pattern into a path.Match glob.
func likeToGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '%':
			b.WriteString("*")
		case '_':
			b.WriteString("?")
		case '*', '?', '[', ']', '\\':
			b.WriteString(`\` + string(r))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// stixSeverity reads a severity label, else maps confidence (0-100).
func stixSeverity(o *stixObject) string {
	for _, l := range o.Labels {
		l = strings.ToLower(strings.TrimPrefix(strings.ToLower(l), "severity:"))
		if severityRank(l) > 0 {
			return l
		}
	}
	if o.Confidence != nil {
		switch n := *o.Confidence; {
		case n >= 85:
			return "high"
		case n >= 50:
			return "medium"
		default:
			return "low"
		}
	}
	return DefaultSeverity
}

// stixGraph answers which named things an indicator is linked to.
type stixGraph struct {
	byID map[string]*stixObject
	out  map[string][]*stixObject // source id -> relationships from it
}

func newStixGraph(objs []stixObject, byID map[string]*stixObject) *stixGraph {
	g := &stixGraph{byID: byID, out: map[string][]*stixObject{}}
	for i := range objs {
		if objs[i].Type == "relationship" {
			g.out[objs[i].SourceRef] = append(g.out[objs[i].SourceRef], &objs[i])
		}
	}
	return g
}

// tags lists the tags of indicator id: what it indicates, who those are
// attributed to, and the techniques and tools they use.
func (g *stixGraph) tags(id string) []string {
	var tags []string
	seen := map[string]bool{id: true}
	var visit func(id string, depth int)
	visit = func(id string, depth int) {
		for _, rel := range g.out[id] {
			t := g.byID[rel.TargetRef]
			if t == nil || seen[t.ID] {
				continue
			}
			switch rel.RelationshipType {
			case "indicates", "attributed-to":
			case "uses":
				if t.Type != "attack-pattern" {
					continue
				}
			default:
				continue
			}
			seen[t.ID] = true
			tags = addTag(tags, stixTag(t))
			if depth < 3 {
				visit(t.ID, depth+1)
			}
		}
	}
	visit(id, 0)
	slices.Sort(tags)
	return tags
}

// stixTag names a linked object as a tag.
func stixTag(o *stixObject) string {
	switch o.Type {
	case "threat-actor", "intrusion-set":
		return "actor:" + o.Name
	case "malware", "tool", "campaign":
		return o.Type + ":" + o.Name
	case "attack-pattern", "vulnerability":
		for _, ref := range o.ExternalReferences {
			if ref.ExternalID != "" && (ref.SourceName == "mitre-attack" || ref.SourceName == "cve") {
				return ref.ExternalID
			}
		}
		return o.Type + ":" + o.Name
	}
	return ""
}
