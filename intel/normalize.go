package intel

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"regexp/syntax"
	"strconv"
	"strings"

	"github.com/huntmesh/huntmesh/collectors/yarascan"
	"github.com/huntmesh/huntmesh/tasks"
)

// ErrInvalidIoC is wrapped by every refusal of a malformed indicator.
var ErrInvalidIoC = errors.New("invalid ioc")

// Limits bound what one indicator may cost to hold and to match.
type Limits struct {
	// MaxValueLen caps the value of every non-YARA indicator, in bytes.
	// 4 KiB holds any real URL or command-line fragment.
	MaxValueLen int

	// MaxYARALen caps one YARA source, in bytes. 1 MiB fits rule sets
	// such as signature-base files several times over.
	MaxYARALen int

	// MaxRegexLen caps the source of a cmdline-re indicator, in bytes.
	MaxRegexLen int

	// MaxRegexProg caps the number of instructions of one compiled regular
	// expression, so that a{1000}{1000}-style blow-ups are refused before
	// they cost memory on every node.
	MaxRegexProg int

	// MaxRegexes caps the cmdline-re indicators one matcher compiles. Each
	// may run on every command line whose literal it shares, so a hunt
	// carrying thousands would slow every node; 1000 with the program cap
	// bounds compiled expressions to a few MiB.
	MaxRegexes int

	// MaxYARABytes caps the YARA source one matcher holds in all, so that
	// the file and memory scanners, which compile every source of the set
	// together, stay within yarascan.MaxSourceBytes.
	MaxYARABytes int
}

// DefaultLimits returns the limits used when a caller passes zero values.
func DefaultLimits() Limits {
	return Limits{
		MaxValueLen:  4 << 10,
		MaxYARALen:   1 << 20,
		MaxRegexLen:  1 << 10,
		MaxRegexProg: 5000,
		MaxRegexes:   1000,
		MaxYARABytes: yarascan.MaxSourceBytes,
	}
}

// orDefault fills zero fields with the defaults.
func (l Limits) orDefault() Limits {
	d := DefaultLimits()
	if l.MaxValueLen <= 0 {
		l.MaxValueLen = d.MaxValueLen
	}
	if l.MaxYARALen <= 0 {
		l.MaxYARALen = d.MaxYARALen
	}
	if l.MaxRegexLen <= 0 {
		l.MaxRegexLen = d.MaxRegexLen
	}
	if l.MaxRegexProg <= 0 {
		l.MaxRegexProg = d.MaxRegexProg
	}
	if l.MaxRegexes <= 0 {
		l.MaxRegexes = d.MaxRegexes
	}
	if l.MaxYARABytes <= 0 {
		l.MaxYARABytes = d.MaxYARABytes
	}
	return l
}

// Key is an indicator's identity: its type and normalised value. Two
// indicators with the same key are the same indicator, whatever their
// severity, tags or source say.
func Key(ioc tasks.IoC) (string, error) {
	v, err := NormalizeValue(ioc.Type, ioc.Value, Limits{})
	if err != nil {
		return "", err
	}
	return ioc.Type + "\x00" + v, nil
}

// Normalize returns ioc with its value in canonical form, or an error
// wrapping ErrInvalidIoC that says why the indicator cannot be used.
func Normalize(ioc tasks.IoC, lim Limits) (tasks.IoC, error) {
	v, err := NormalizeValue(ioc.Type, ioc.Value, lim)
	if err != nil {
		return ioc, err
	}
	ioc.Value = v
	return ioc, nil
}

// NormalizeValue puts value into the canonical form of IoC type typ:
// lower-case hex for hashes, the shortest text form for addresses and
// networks, a lower-case name without a trailing dot for domains, a URL
// with lower-case scheme and host and no default port or fragment, and
// lower-case names and globs for files and processes. Command-line
// substrings keep their spaces (they are significant) but are lower-cased,
// since matching folds ASCII case.
func NormalizeValue(typ, value string, lim Limits) (string, error) {
	lim = lim.orDefault()
	max := lim.MaxValueLen
	if typ == tasks.IoCYARA {
		max = lim.MaxYARALen
	}
	if len(value) > max {
		return "", invalid(typ, "value is %d bytes, over the limit of %d", len(value), max)
	}

	switch typ {
	case tasks.IoCMD5:
		return normHash(typ, value, 32)
	case tasks.IoCSHA1:
		return normHash(typ, value, 40)
	case tasks.IoCSHA256:
		return normHash(typ, value, 64)
	case tasks.IoCIP:
		a, err := parseAddr(strings.TrimSpace(value))
		if err != nil {
			return "", invalid(typ, "%v", err)
		}
		return a.String(), nil
	case tasks.IoCCIDR:
		p, err := parsePrefix(strings.TrimSpace(value))
		if err != nil {
			return "", invalid(typ, "%v", err)
		}
		// A network wider than a /8 (or an IPv6 /16) flags most of the
		// Internet: a feed's mistake, never an indicator.
		if min := map[bool]int{true: 8, false: 16}[p.Addr().Is4()]; p.Bits() < min {
			return "", invalid(typ, "%s is wider than a /%d and would match almost every "+
				"address", p, min)
		}
		return p.String(), nil
	case tasks.IoCDomain:
		return normDomain(value)
	case tasks.IoCURL:
		return normURL(value)
	case tasks.IoCFileName:
		return normGlob(typ, value, false)
	case tasks.IoCPath:
		return normGlob(typ, value, true)
	case tasks.IoCProcess:
		v := strings.ToLower(strings.TrimSpace(value))
		if v == "" {
			return "", invalid(typ, "empty name")
		}
		return v, nil
	case tasks.IoCCmdline:
		if strings.TrimSpace(value) == "" {
			return "", invalid(typ, "empty substring")
		}
		return asciiLower(value), nil
	case tasks.IoCCmdlineRE:
		if _, err := compileRegex(value, lim); err != nil {
			return "", err
		}
		return value, nil
	case tasks.IoCPort:
		return normPort(value)
	case tasks.IoCYARA:
		v := strings.TrimSpace(value)
		if v == "" {
			return "", invalid(typ, "empty rule source")
		}
		if len(yaraRuleNames(v)) == 0 {
			return "", invalid(typ, "no rule found in source")
		}
		return v, nil
	}
	return "", invalid(typ, "unknown type")
}

// invalid builds an ErrInvalidIoC refusal naming the type.
func invalid(typ, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidIoC, typ, fmt.Sprintf(format, args...))
}

// normHash lower-cases a hex digest and checks its length and alphabet.
func normHash(typ, value string, n int) (string, error) {
	v := strings.ToLower(strings.TrimSpace(value))
	if len(v) != n {
		return "", invalid(typ, "want %d hex digits, got %d", n, len(v))
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", invalid(typ, "non-hex character %q", c)
		}
	}
	return v, nil
}

// parseAddr parses an address and drops any zone and IPv4-in-IPv6 mapping,
// so that ::ffff:192.0.2.1 and 192.0.2.1 are one indicator.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, err
	}
	return a.WithZone("").Unmap(), nil
}

// parsePrefix parses a network, accepting a bare address as a host route.
func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := parseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a := p.Addr().Unmap()
	bits := p.Bits()
	if p.Addr().Is4In6() {
		bits -= 96
		if bits < 0 {
			return netip.Prefix{}, fmt.Errorf("mapped prefix %s is wider than IPv4", s)
		}
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

// normDomain lower-cases a DNS name, drops a trailing dot and a leading
// wildcard label, and checks the characters.
func normDomain(value string) (string, error) {
	v := strings.ToLower(strings.TrimSpace(value))
	v = strings.TrimSuffix(v, ".")
	v = strings.TrimPrefix(v, "*.")
	if v == "" || len(v) > 253 {
		return "", invalid(tasks.IoCDomain, "name length %d outside 1..253", len(v))
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' ||
			c == '_' || c >= 0x80
		if !ok {
			return "", invalid(tasks.IoCDomain, "character %q not allowed in a name", c)
		}
	}
	if strings.Contains(v, "..") || v[0] == '.' {
		return "", invalid(tasks.IoCDomain, "empty label in %q", v)
	}
	return v, nil
}

// normURL puts a URL in canonical form. A URL without a scheme is taken as
// http, as feeds often list "host/path".
func normURL(value string) (string, error) {
	v := strings.TrimSpace(value)
	if v == "" {
		return "", invalid(tasks.IoCURL, "empty url")
	}
	if !strings.Contains(v, "://") {
		v = "http://" + v
	}
	s, ok := canonURL(v)
	if !ok {
		return "", invalid(tasks.IoCURL, "cannot parse %q", value)
	}
	return s, nil
}

// defaultPorts are dropped from URLs during normalisation.
var defaultPorts = map[string]string{"http": "80", "https": "443", "ftp": "21"}

// canonURL is the normalisation shared by indicators and record values.
func canonURL(v string) (string, bool) {
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", false
	}
	u.Scheme = strings.ToLower(u.Scheme)
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	port := u.Port()
	if port == defaultPorts[u.Scheme] {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	u.Host = host
	u.User = nil
	u.Fragment = ""
	u.RawFragment = ""
	if u.Path == "" {
		u.Path = "/"
	}
	return u.String(), true
}

// normGlob lower-cases a file name or path glob and checks its syntax.
// Windows paths (C:\..., \\server\...) are turned to forward slashes, the
// same way record paths are before matching.
func normGlob(typ, value string, isPath bool) (string, error) {
	v := strings.TrimSpace(value)
	if v == "" {
		return "", invalid(typ, "empty pattern")
	}
	v = strings.ToLower(v)
	if isPath && looksWindows(v) {
		v = strings.ReplaceAll(v, `\`, "/")
	}
	if !isPath && strings.ContainsAny(v, `/`) {
		return "", invalid(typ, "a file name cannot hold '/': %q", value)
	}
	if _, err := path.Match(v, ""); err != nil {
		return "", invalid(typ, "bad glob %q: %v", value, err)
	}
	return v, nil
}

// looksWindows reports whether p is a drive or UNC path.
func looksWindows(p string) bool {
	return strings.HasPrefix(p, `\\`) ||
		len(p) >= 3 && p[1] == ':' && (p[2] == '\\' || p[2] == '/')
}

// normPort accepts "3333", "192.0.2.1:3333" and "[2001:db8::1]:3333".
func normPort(value string) (string, error) {
	v := strings.TrimSpace(value)
	if n, err := strconv.Atoi(v); err == nil {
		if n < 1 || n > 65535 {
			return "", invalid(tasks.IoCPort, "port %d outside 1..65535", n)
		}
		return strconv.Itoa(n), nil
	}
	ap, err := netip.ParseAddrPort(v)
	if err != nil {
		return "", invalid(tasks.IoCPort, "want a port or address:port, got %q", value)
	}
	if ap.Port() == 0 {
		return "", invalid(tasks.IoCPort, "port 0 in %q", value)
	}
	ap = netip.AddrPortFrom(ap.Addr().WithZone("").Unmap(), ap.Port())
	return ap.String(), nil
}

// compileRegex checks a cmdline-re source against the limits and returns
// its syntax tree.
func compileRegex(src string, lim Limits) (*syntax.Regexp, error) {
	lim = lim.orDefault()
	if src == "" {
		return nil, invalid(tasks.IoCCmdlineRE, "empty expression")
	}
	if len(src) > lim.MaxRegexLen {
		return nil, invalid(tasks.IoCCmdlineRE, "expression is %d bytes, over the limit of %d",
			len(src), lim.MaxRegexLen)
	}
	re, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return nil, invalid(tasks.IoCCmdlineRE, "%v", err)
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, invalid(tasks.IoCCmdlineRE, "%v", err)
	}
	if len(prog.Inst) > lim.MaxRegexProg {
		return nil, invalid(tasks.IoCCmdlineRE,
			"compiled program has %d instructions, over the limit of %d",
			len(prog.Inst), lim.MaxRegexProg)
	}
	return re, nil
}

// asciiLower folds ASCII letters only, so that byte offsets are kept and
// non-ASCII text is compared as it is.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
