package intel

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/huntmesh/huntmesh/tasks"
)

// matchRun is the state of one Match call.
type matchRun struct {
	m    *Matcher
	rec  *tasks.Record
	hits []tasks.Detection

	// Pairs for address:port indicators, and file name inputs resolved
	// after all fields are seen.
	remoteAddr, dstAddr string
	remotePort, dstPort int64
	name, filePath      string
}

// Match returns one detection per (indicator, field) that rec matches, in
// a stable order, or nil. It does not retain rec beyond the returned
// detections, which carry a copy of the record (sharing its Fields map).
func (m *Matcher) Match(rec *tasks.Record) []tasks.Detection {
	if rec == nil || len(m.iocs) == 0 {
		return nil
	}
	r := matchRun{m: m, rec: rec, remotePort: -1, dstPort: -1}
	for k, v := range rec.Fields {
		r.field(k, v)
	}
	r.finish()
	if len(r.hits) > 1 {
		sortDetections(r.hits)
	}
	return r.hits
}

// field dispatches one record field to the indicator types that check it.
func (r *matchRun) field(k string, v any) {
	m := r.m
	switch k {
	case "remote_address", "source_address", "caller_address", "src_address",
		"dst_address":
		s, _ := v.(string)
		if k == "remote_address" {
			r.remoteAddr = s
		} else if k == "dst_address" {
			r.dstAddr = s
		}
		if m.ips != nil || m.prefixes != nil {
			r.ip(k, s)
		}
	case "remote_port", "dst_port":
		n, ok := toInt(v)
		if !ok {
			return
		}
		if k == "remote_port" {
			r.remotePort = n
		} else {
			r.dstPort = n
		}
		if m.ports != nil && n > 0 && n < 65536 {
			if id, ok := m.ports[uint16(n)]; ok {
				r.hit(id, k)
			}
		}
	case "sha256", "exe_sha256":
		r.hash(m.sha256, k, v)
	case "sha1":
		r.hash(m.sha1, k, v)
	case "md5":
		r.hash(m.md5, k, v)
	case "name":
		s, _ := v.(string)
		switch r.rec.Kind {
		case tasks.KindProcess:
			r.proc(k, s)
		case tasks.KindFile, tasks.KindPersistence:
			r.name = s
		}
	case "process_name", "parent_name":
		s, _ := v.(string)
		r.proc(k, s)
	case "exe", "process_exe", "parent_exe", "image":
		s, _ := v.(string)
		// The kernel marks the exe of a deleted binary this way.
		s = strings.TrimSuffix(s, " (deleted)")
		if s == "" {
			return
		}
		r.proc(k, baseName(s))
		r.path(k, s)
	case "path":
		s, _ := v.(string)
		r.filePath = s
		r.path(k, s)
	case "cmdline", "command":
		s, _ := v.(string)
		r.cmdline(k, s)
		r.words(k, s, true)
	case "message":
		s, _ := v.(string)
		r.words(k, s, true)
	case "domain", "query":
		s, _ := v.(string)
		r.domain(k, s)
	case "url":
		s, _ := v.(string)
		r.url(k, s)
	case "yara":
		if m.yaraRules == nil {
			return
		}
		for _, name := range strs(v) {
			if id, ok := m.yaraRules[name]; ok {
				r.hitAs(id, k, name)
			}
		}
	}
}

// finish runs the checks that need more than one field.
func (r *matchRun) finish() {
	m := r.m
	if m.addrPorts != nil {
		r.addrPort("remote_address:remote_port", r.remoteAddr, r.remotePort)
		r.addrPort("dst_address:dst_port", r.dstAddr, r.dstPort)
	}
	if m.fileExact != nil || m.fileGlobs.n > 0 {
		switch {
		case r.name != "":
			r.fileName("name", r.name)
		case r.filePath != "":
			r.fileName("path", baseName(r.filePath))
		}
	}
}

// hit adds a detection for indicator id in field k, once per pair.
func (r *matchRun) hit(id int32, k string) {
	r.hitAs(id, k, r.m.iocs[id].Value)
}

// hitAs is hit with the value the detection names: for YARA, one source
// declares several rules and the detection names the rule that matched.
func (r *matchRun) hitAs(id int32, k, value string) {
	ioc := &r.m.iocs[id]
	for i := range r.hits {
		h := &r.hits[i]
		if h.Field == k && h.IoCType == ioc.Type && h.IoCValue == value {
			return
		}
	}
	r.hits = append(r.hits, tasks.Detection{
		Host:     r.rec.Host,
		Time:     r.rec.Time,
		IoCType:  ioc.Type,
		IoCValue: value,
		Severity: ioc.Severity,
		Tags:     slices.Clone(ioc.Tags),
		Field:    k,
		Record:   *r.rec,
	})
}

// ip checks an address field against addresses and networks.
func (r *matchRun) ip(k, s string) {
	if s == "" {
		return
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return
	}
	a = a.WithZone("").Unmap()
	m := r.m
	if id, ok := m.ips[a]; ok {
		r.hit(id, k)
	}
	if m.prefixes == nil {
		return
	}
	bits := m.bits6
	if a.Is4() {
		bits = m.bits4
	}
	for _, b := range bits {
		p, err := a.Prefix(b)
		if err != nil {
			continue
		}
		if id, ok := m.prefixes[p]; ok {
			r.hit(id, k)
		}
	}
}

// addrPort checks an address and port pair.
func (r *matchRun) addrPort(k, addr string, port int64) {
	if addr == "" || port <= 0 || port > 65535 {
		return
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return
	}
	ap := netip.AddrPortFrom(a.WithZone("").Unmap(), uint16(port))
	if id, ok := r.m.addrPorts[ap]; ok {
		r.hit(id, k)
	}
}

// hash checks a digest field; values are lower-cased only when needed.
func (r *matchRun) hash(set map[string]int32, k string, v any) {
	if set == nil {
		return
	}
	s, _ := v.(string)
	if s == "" {
		return
	}
	if id, ok := set[s]; ok {
		r.hit(id, k)
		return
	}
	if id, ok := set[strings.ToLower(s)]; ok {
		r.hit(id, k)
	}
}

// proc checks a process name.
func (r *matchRun) proc(k, s string) {
	if r.m.procs == nil || s == "" {
		return
	}
	if id, ok := r.m.procs[strings.ToLower(s)]; ok {
		r.hit(id, k)
	}
}

// path checks a full path against path indicators.
func (r *matchRun) path(k, s string) {
	m := r.m
	if s == "" || m.pathExact == nil && m.pathGlobs.n == 0 {
		return
	}
	s = strings.ToLower(s)
	if strings.IndexByte(s, '\\') >= 0 && looksWindows(s) {
		s = strings.ReplaceAll(s, `\`, "/")
	}
	if id, ok := m.pathExact[s]; ok {
		r.hit(id, k)
	}
	m.pathGlobs.match(s, func(id int32) { r.hit(id, k) })
}

// fileName checks a base name against file name indicators.
func (r *matchRun) fileName(k, s string) {
	m := r.m
	if s == "" {
		return
	}
	s = strings.ToLower(s)
	if id, ok := m.fileExact[s]; ok {
		r.hit(id, k)
	}
	m.fileGlobs.match(s, func(id int32) { r.hit(id, k) })
}

// cmdline runs the substring automaton and the expressions over s.
func (r *matchRun) cmdline(k, s string) {
	m := r.m
	if s == "" {
		return
	}
	// One pass finds substrings and the literals that expressions need;
	// only expressions whose literal was seen are run.
	var cand []int32
	if m.ac != nil {
		m.ac.scan(s, func(p int32) {
			if id := m.acIoC[p]; id >= 0 {
				r.hit(id, k)
			} else if x := -id - 1; !slices.Contains(cand, x) {
				cand = append(cand, x)
			}
		})
	}
	for _, x := range m.always {
		cand = append(cand, x)
	}
	for _, x := range cand {
		if e := m.regexes[x]; e.re.MatchString(s) {
			r.hit(e.id, k)
		}
	}
}

// domain checks a name and each parent domain of it.
func (r *matchRun) domain(k, s string) {
	m := r.m
	if m.domains == nil || s == "" {
		return
	}
	s = strings.TrimSuffix(strings.ToLower(s), ".")
	for {
		if id, ok := m.domains[s]; ok {
			r.hit(id, k)
		}
		i := strings.IndexByte(s, '.')
		if i < 0 {
			return
		}
		s = s[i+1:]
	}
}

// url checks a URL field: the whole URL, and its host as a domain.
func (r *matchRun) url(k, s string) {
	if s == "" || r.m.urls == nil && r.m.domains == nil {
		return
	}
	c, ok := canonURL(s)
	if !ok {
		return
	}
	if id, ok := r.m.urls[c]; ok {
		r.hit(id, k)
	}
	if r.m.domains != nil {
		r.domain(k, urlHost(c))
	}
}

// urlHost is the host of a canonical URL, without port or brackets.
func urlHost(c string) string {
	h := c[strings.Index(c, "://")+3:]
	if i := strings.IndexByte(h, '/'); i >= 0 {
		h = h[:i]
	}
	if strings.HasPrefix(h, "[") {
		return ""
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		h = h[:i]
	}
	return h
}

// wordSep splits free text into candidate URLs, hosts and paths.
func wordSep(c rune) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '"', '\'', '`', '=', ',', ';', '(', ')', '<', '>',
		'|', '[', ']', '{', '}':
		return true
	}
	return false
}

// words looks for URLs, host names and file names among the words of free
// text. It does nothing when the set has none of those indicator types.
func (r *matchRun) words(k, s string, files bool) {
	m := r.m
	wantFile := files && (m.fileExact != nil || m.fileGlobs.n > 0)
	if s == "" || m.domains == nil && m.urls == nil && !wantFile {
		return
	}
	eachWord(s, func(w string) {
		if wantFile && strings.ContainsAny(w, `/\.`) {
			r.fileName(k, baseName(w))
		}
		if i := strings.Index(w, "://"); i > 0 {
			r.url(k, w)
			return
		}
		if m.domains == nil || strings.IndexByte(w, '.') < 0 {
			return
		}
		r.domain(k, hostOf(w))
	})
}

// wordSepByte marks the bytes wordSep splits at.
var wordSepByte = func() (t [256]bool) {
	for c := range t {
		t[c] = c < 0x80 && wordSep(rune(c))
	}
	return t
}()

// eachWord calls fn for each word of s, as strings.FieldsFunc(s, wordSep)
// splits it. Every separator is ASCII and no byte of a multi-byte UTF-8
// sequence is, so splitting bytes gives the same words without decoding
// runes.
func eachWord(s string, fn func(string)) {
	start := -1
	for i := 0; i < len(s); i++ {
		switch {
		case wordSepByte[s[i]]:
			if start >= 0 {
				fn(s[start:i])
				start = -1
			}
		case start < 0:
			start = i
		}
	}
	if start >= 0 {
		fn(s[start:])
	}
}

// hostOf trims user@, :port and /path from a host-like word.
func hostOf(w string) string {
	if i := strings.LastIndexByte(w, '@'); i >= 0 {
		w = w[i+1:]
	}
	if i := strings.IndexAny(w, `/\`); i >= 0 {
		w = w[:i]
	}
	if i := strings.IndexByte(w, ':'); i >= 0 {
		w = w[:i]
	}
	return strings.TrimRight(w, ".")
}

// toInt reads a port number from the value types records carry (JSON
// decoding yields float64).
func toInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case float64:
		return int64(n), true
	case int32:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case string:
		p, err := strconv.ParseInt(n, 10, 64)
		return p, err == nil
	}
	return 0, false
}

// strs reads a list of strings from the value types records carry.
func strs(v any) []string {
	switch l := v.(type) {
	case []string:
		return l
	case string:
		return []string{l}
	case []any:
		out := make([]string, 0, len(l))
		for _, e := range l {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
