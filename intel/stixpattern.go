package intel

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// STIX 2.1 patterning, enough of it to turn indicators into IoCs: the full
// grammar is parsed (observations, AND/OR/FOLLOWEDBY, qualifiers,
// comparisons with =, !=, <, >, IN, LIKE, MATCHES, ISSUBSET, ISSUPERSET,
// EXISTS, NOT, and every literal form), and mapping to indicators is done
// by the importer.

// maxPatternLen bounds one pattern's text; maxDNFTerms bounds the
// disjunctive normal form a comparison expression may expand to.
const (
	maxPatternLen = 64 << 10
	maxDNFTerms   = 256
	maxDepth      = 64
)

// errPattern is wrapped by every pattern parse error.
var errPattern = errors.New("bad stix pattern")

// stixPath is an object path such as file:hashes.'SHA-256'.
type stixPath struct {
	Type  string   // object type, "file"
	Props []string // components: "hashes", "SHA-256", "[*]"
}

// String renders the path in a canonical form: file:hashes.'SHA-256'.
func (p stixPath) String() string {
	var b strings.Builder
	b.WriteString(p.Type)
	b.WriteByte(':')
	for i, c := range p.Props {
		if strings.HasPrefix(c, "[") {
			b.WriteString(c)
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		if isPlainIdent(c) {
			b.WriteString(c)
		} else {
			b.WriteString("'" + c + "'")
		}
	}
	return b.String()
}

// prop is the property path without the object type, "hashes.SHA-256".
func (p stixPath) prop() string { return strings.Join(p.Props, ".") }

func isPlainIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isIdentPart(s[i]) {
			return false
		}
	}
	return true
}

// stixValue is one literal; Kind is string, int, float, bool, time, hex or
// binary.
type stixValue struct {
	Kind string
	Text string
}

// stixComparison is one property test.
type stixComparison struct {
	Path    stixPath
	Op      string // =, !=, <, <=, >, >=, IN, LIKE, MATCHES, ISSUBSET, ISSUPERSET, EXISTS
	Negated bool
	Values  []stixValue
}

// cmpExpr is a comparison expression tree inside one observation.
type cmpExpr struct {
	Op   string // AND, OR, or "" for a leaf
	Kids []*cmpExpr
	Leaf *stixComparison
}

// obsExpr is an observation expression tree.
type obsExpr struct {
	Op         string // AND, OR, FOLLOWEDBY, or "" for one observation
	Kids       []*obsExpr
	Cmp        *cmpExpr
	Qualifiers []string
}

// parseSTIXPattern parses a pattern.
func parseSTIXPattern(src string) (*obsExpr, error) {
	if len(src) > maxPatternLen {
		return nil, fmt.Errorf("%w: %d bytes, over %d", errPattern, len(src), maxPatternLen)
	}
	p := &patternParser{src: src}
	if err := p.lex(); err != nil {
		return nil, err
	}
	e, err := p.observations(0)
	if err != nil {
		return nil, err
	}
	if !p.done() {
		return nil, p.errorf("unexpected %q", p.peek().text)
	}
	return e, nil
}

// token kinds.
const (
	tkPunct  = iota // [ ] ( ) , :
	tkOp            // = != < <= > >=
	tkWord          // identifiers and keywords
	tkString        // 'text'
	tkNumber
	tkPrefixed // t'..', h'..', b'..'
)

type token struct {
	kind int
	text string // unescaped text for strings
	pre  byte   // prefix of tkPrefixed
	pos  int
}

type patternParser struct {
	src  string
	toks []token
	i    int
}

func (p *patternParser) errorf(format string, args ...any) error {
	pos := len(p.src)
	if p.i < len(p.toks) {
		pos = p.toks[p.i].pos
	}
	return fmt.Errorf("%w: at byte %d: %s", errPattern, pos, fmt.Sprintf(format, args...))
}

// lex splits the pattern into tokens.
func (p *patternParser) lex() error {
	s := p.src
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case strings.IndexByte("[](),:", c) >= 0:
			p.toks = append(p.toks, token{kind: tkPunct, text: s[i : i+1], pos: i})
			i++
		case c == '=' || c == '!' || c == '<' || c == '>':
			j := i + 1
			if j < len(s) && s[j] == '=' {
				j++
			} else if c == '<' && j < len(s) && s[j] == '>' {
				j++
			}
			op := s[i:j]
			if op == "!" {
				return fmt.Errorf("%w: at byte %d: lone '!'", errPattern, i)
			}
			if op == "<>" {
				op = "!="
			}
			p.toks = append(p.toks, token{kind: tkOp, text: op, pos: i})
			i = j
		case c == '\'':
			text, n, err := lexString(s, i)
			if err != nil {
				return err
			}
			p.toks = append(p.toks, token{kind: tkString, text: text, pos: i})
			i += n
		case (c == 't' || c == 'h' || c == 'b') && i+1 < len(s) && s[i+1] == '\'':
			text, n, err := lexString(s, i+1)
			if err != nil {
				return err
			}
			p.toks = append(p.toks, token{kind: tkPrefixed, text: text, pre: c, pos: i})
			i += 1 + n
		case c == '-' || c == '+' || c >= '0' && c <= '9':
			j := i + 1
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
				j++
			}
			if _, err := strconv.ParseFloat(s[i:j], 64); err != nil {
				return fmt.Errorf("%w: at byte %d: bad number %q", errPattern, i, s[i:j])
			}
			p.toks = append(p.toks, token{kind: tkNumber, text: s[i:j], pos: i})
			i = j
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && (isIdentPart(s[j]) || s[j] == '-') {
				j++
			}
			p.toks = append(p.toks, token{kind: tkWord, text: s[i:j], pos: i})
			i = j
		case c == '.':
			p.toks = append(p.toks, token{kind: tkPunct, text: ".", pos: i})
			i++
		case c == '*':
			p.toks = append(p.toks, token{kind: tkPunct, text: "*", pos: i})
			i++
		default:
			return fmt.Errorf("%w: at byte %d: unexpected %q", errPattern, i, c)
		}
	}
	return nil
}

// lexString reads a quoted string at s[i] == '\” and returns its text and
// length; only \' and \\ are escapes.
func lexString(s string, i int) (string, int, error) {
	var b strings.Builder
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			if j+1 >= len(s) || s[j+1] != '\'' && s[j+1] != '\\' {
				return "", 0, fmt.Errorf("%w: at byte %d: bad escape", errPattern, j)
			}
			j++
			b.WriteByte(s[j])
		case '\'':
			return b.String(), j - i + 1, nil
		default:
			b.WriteByte(s[j])
		}
	}
	return "", 0, fmt.Errorf("%w: at byte %d: unterminated string", errPattern, i)
}

func (p *patternParser) done() bool { return p.i >= len(p.toks) }

func (p *patternParser) peek() token {
	if p.done() {
		return token{kind: -1, pos: len(p.src)}
	}
	return p.toks[p.i]
}

// isTok reports whether the next token is kind with text.
func (p *patternParser) isTok(kind int, text string) bool {
	t := p.peek()
	return t.kind == kind && t.text == text
}

func (p *patternParser) expect(kind int, text string) error {
	if !p.isTok(kind, text) {
		return p.errorf("want %q, got %q", text, p.peek().text)
	}
	p.i++
	return nil
}

// observations parses observation expressions joined by FOLLOWEDBY, OR and
// AND (lowest to highest precedence).
func (p *patternParser) observations(depth int) (*obsExpr, error) {
	return p.obsLevel(depth, 0)
}

var obsOps = []string{"FOLLOWEDBY", "OR", "AND"}

func (p *patternParser) obsLevel(depth, level int) (*obsExpr, error) {
	if depth > maxDepth {
		return nil, p.errorf("nested too deeply")
	}
	if level == len(obsOps) {
		return p.observation(depth)
	}
	first, err := p.obsLevel(depth, level+1)
	if err != nil {
		return nil, err
	}
	e := first
	for p.isTok(tkWord, obsOps[level]) {
		p.i++
		next, err := p.obsLevel(depth, level+1)
		if err != nil {
			return nil, err
		}
		if e == first {
			e = &obsExpr{Op: obsOps[level], Kids: []*obsExpr{first}}
		}
		e.Kids = append(e.Kids, next)
	}
	return e, nil
}

// observation parses [ ... ] or ( ... ) followed by qualifiers.
func (p *patternParser) observation(depth int) (*obsExpr, error) {
	var e *obsExpr
	switch {
	case p.isTok(tkPunct, "["):
		p.i++
		c, err := p.cmpOr(depth + 1)
		if err != nil {
			return nil, err
		}
		if err := p.expect(tkPunct, "]"); err != nil {
			return nil, err
		}
		e = &obsExpr{Cmp: c}
	case p.isTok(tkPunct, "("):
		p.i++
		inner, err := p.observations(depth + 1)
		if err != nil {
			return nil, err
		}
		if err := p.expect(tkPunct, ")"); err != nil {
			return nil, err
		}
		e = inner
	default:
		return nil, p.errorf("want '[' or '(', got %q", p.peek().text)
	}
	for {
		q, ok, err := p.qualifier()
		if err != nil {
			return nil, err
		}
		if !ok {
			return e, nil
		}
		e.Qualifiers = append(e.Qualifiers, q)
	}
}

// qualifier parses WITHIN n SECONDS, REPEATS n TIMES or START t STOP t.
func (p *patternParser) qualifier() (string, bool, error) {
	t := p.peek()
	if t.kind != tkWord {
		return "", false, nil
	}
	switch t.text {
	case "WITHIN", "REPEATS":
		p.i++
		n := p.peek()
		if n.kind != tkNumber {
			return "", false, p.errorf("%s wants a number", t.text)
		}
		p.i++
		unit := "SECONDS"
		if t.text == "REPEATS" {
			unit = "TIMES"
		}
		if err := p.expect(tkWord, unit); err != nil {
			return "", false, err
		}
		return t.text + " " + n.text + " " + unit, true, nil
	case "START":
		p.i++
		a := p.peek()
		if a.kind != tkPrefixed || a.pre != 't' {
			return "", false, p.errorf("START wants a timestamp")
		}
		p.i++
		if err := p.expect(tkWord, "STOP"); err != nil {
			return "", false, err
		}
		b := p.peek()
		if b.kind != tkPrefixed || b.pre != 't' {
			return "", false, p.errorf("STOP wants a timestamp")
		}
		p.i++
		return "START " + a.text + " STOP " + b.text, true, nil
	}
	return "", false, nil
}

// cmpOr parses comparisons joined by OR.
func (p *patternParser) cmpOr(depth int) (*cmpExpr, error) {
	return p.cmpJoin(depth, "OR", p.cmpAnd)
}

// cmpAnd parses comparisons joined by AND.
func (p *patternParser) cmpAnd(depth int) (*cmpExpr, error) {
	return p.cmpJoin(depth, "AND", p.cmpPrimary)
}

func (p *patternParser) cmpJoin(depth int, op string,
	next func(int) (*cmpExpr, error)) (*cmpExpr, error) {
	if depth > maxDepth {
		return nil, p.errorf("nested too deeply")
	}
	first, err := next(depth)
	if err != nil {
		return nil, err
	}
	e := first
	for p.isTok(tkWord, op) {
		p.i++
		k, err := next(depth)
		if err != nil {
			return nil, err
		}
		if e == first {
			e = &cmpExpr{Op: op, Kids: []*cmpExpr{first}}
		}
		e.Kids = append(e.Kids, k)
	}
	return e, nil
}

// cmpPrimary parses a parenthesised expression or one comparison.
func (p *patternParser) cmpPrimary(depth int) (*cmpExpr, error) {
	if p.isTok(tkPunct, "(") {
		p.i++
		e, err := p.cmpOr(depth + 1)
		if err != nil {
			return nil, err
		}
		return e, p.expect(tkPunct, ")")
	}
	c := &stixComparison{}
	if p.isTok(tkWord, "EXISTS") {
		p.i++
		path, err := p.objectPath()
		if err != nil {
			return nil, err
		}
		c.Path, c.Op = path, "EXISTS"
		return &cmpExpr{Leaf: c}, nil
	}
	path, err := p.objectPath()
	if err != nil {
		return nil, err
	}
	c.Path = path
	if p.isTok(tkWord, "NOT") {
		p.i++
		c.Negated = true
	}
	t := p.peek()
	switch {
	case t.kind == tkOp:
		c.Op = t.text
	case t.kind == tkWord && (t.text == "IN" || t.text == "LIKE" || t.text == "MATCHES" ||
		t.text == "ISSUBSET" || t.text == "ISSUPERSET"):
		c.Op = t.text
	default:
		return nil, p.errorf("want an operator, got %q", t.text)
	}
	p.i++
	if c.Op == "IN" {
		vs, err := p.valueList()
		if err != nil {
			return nil, err
		}
		c.Values = vs
	} else {
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		c.Values = []stixValue{v}
	}
	return &cmpExpr{Leaf: c}, nil
}

// objectPath parses type:prop(.prop|[n]|[*])*.
func (p *patternParser) objectPath() (stixPath, error) {
	t := p.peek()
	if t.kind != tkWord {
		return stixPath{}, p.errorf("want an object type, got %q", t.text)
	}
	p.i++
	path := stixPath{Type: t.text}
	if err := p.expect(tkPunct, ":"); err != nil {
		return stixPath{}, err
	}
	if err := p.component(&path); err != nil {
		return stixPath{}, err
	}
	for {
		switch {
		case p.isTok(tkPunct, "."):
			p.i++
			if err := p.component(&path); err != nil {
				return stixPath{}, err
			}
		case p.isTok(tkPunct, "["):
			p.i++
			idx := p.peek()
			if idx.kind != tkNumber && !(idx.kind == tkPunct && idx.text == "*") {
				return stixPath{}, p.errorf("want a list index, got %q", idx.text)
			}
			p.i++
			if err := p.expect(tkPunct, "]"); err != nil {
				return stixPath{}, err
			}
			path.Props = append(path.Props, "["+idx.text+"]")
		default:
			return path, nil
		}
	}
}

// component reads one property name, plain or quoted.
func (p *patternParser) component(path *stixPath) error {
	t := p.peek()
	if t.kind != tkWord && t.kind != tkString {
		return p.errorf("want a property name, got %q", t.text)
	}
	p.i++
	path.Props = append(path.Props, t.text)
	return nil
}

// value parses one literal.
func (p *patternParser) value() (stixValue, error) {
	t := p.peek()
	p.i++
	switch t.kind {
	case tkString:
		return stixValue{Kind: "string", Text: t.text}, nil
	case tkNumber:
		if strings.Contains(t.text, ".") {
			return stixValue{Kind: "float", Text: t.text}, nil
		}
		return stixValue{Kind: "int", Text: t.text}, nil
	case tkPrefixed:
		kind := map[byte]string{'t': "time", 'h': "hex", 'b': "binary"}[t.pre]
		return stixValue{Kind: kind, Text: t.text}, nil
	case tkWord:
		if t.text == "true" || t.text == "false" {
			return stixValue{Kind: "bool", Text: t.text}, nil
		}
	}
	p.i--
	return stixValue{}, p.errorf("want a value, got %q", t.text)
}

// valueList parses ( v, v, ... ).
func (p *patternParser) valueList() ([]stixValue, error) {
	if err := p.expect(tkPunct, "("); err != nil {
		return nil, err
	}
	var vs []stixValue
	for {
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		vs = append(vs, v)
		if p.isTok(tkPunct, ")") {
			p.i++
			return vs, nil
		}
		if err := p.expect(tkPunct, ","); err != nil {
			return nil, err
		}
	}
}

// dnf expands a comparison expression into OR-of-AND terms.
func (e *cmpExpr) dnf() ([][]*stixComparison, error) {
	switch e.Op {
	case "":
		return [][]*stixComparison{{e.Leaf}}, nil
	case "OR":
		var out [][]*stixComparison
		for _, k := range e.Kids {
			t, err := k.dnf()
			if err != nil {
				return nil, err
			}
			out = append(out, t...)
			if len(out) > maxDNFTerms {
				return nil, fmt.Errorf("%w: more than %d alternatives", errPattern, maxDNFTerms)
			}
		}
		return out, nil
	}
	out := [][]*stixComparison{{}}
	for _, k := range e.Kids {
		t, err := k.dnf()
		if err != nil {
			return nil, err
		}
		if len(out)*len(t) > maxDNFTerms {
			return nil, fmt.Errorf("%w: more than %d alternatives", errPattern, maxDNFTerms)
		}
		var next [][]*stixComparison
		for _, a := range out {
			for _, b := range t {
				term := append(append([]*stixComparison{}, a...), b...)
				next = append(next, term)
			}
		}
		out = next
	}
	return out, nil
}
