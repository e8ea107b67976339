package intel

import (
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// minLiteral is the shortest literal worth prefiltering on: shorter ones
// occur in most command lines and would not save running the expression.
const minLiteral = 3

// requiredLiteral returns a literal that every match of re must contain,
// the longest one it can find cheaply, or "". Case-folded literals are
// only used when they are ASCII, because the prefilter folds ASCII only.
func requiredLiteral(re *syntax.Regexp) string {
	switch re.Op {
	case syntax.OpLiteral:
		s := string(re.Rune)
		if re.Flags&syntax.FoldCase != 0 && !isASCII(s) {
			return ""
		}
		return s
	case syntax.OpCapture:
		return requiredLiteral(re.Sub[0])
	case syntax.OpPlus:
		return requiredLiteral(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return requiredLiteral(re.Sub[0])
		}
	case syntax.OpConcat:
		best := ""
		for _, sub := range re.Sub {
			if l := requiredLiteral(sub); len(l) > len(best) {
				best = l
			}
		}
		return best
	}
	return ""
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// globIndex buckets globs by a literal they start or end with, so that a
// name is tried only against globs that could match it.
type globIndex struct {
	byPrefix map[string][]glob // first two bytes of a literal prefix
	bySuffix map[string][]glob // last two bytes of a literal suffix
	rest     []glob
	n        int
}

// add files g under the most selective bucket its pattern allows.
func (x *globIndex) add(g glob) {
	x.n++
	pre, suf := globLiterals(g.pattern)
	switch {
	case len(pre) >= 2:
		if x.byPrefix == nil {
			x.byPrefix = map[string][]glob{}
		}
		x.byPrefix[pre[:2]] = append(x.byPrefix[pre[:2]], g)
	case len(suf) >= 2:
		if x.bySuffix == nil {
			x.bySuffix = map[string][]glob{}
		}
		k := suf[len(suf)-2:]
		x.bySuffix[k] = append(x.bySuffix[k], g)
	default:
		x.rest = append(x.rest, g)
	}
}

// match reports each glob matching s.
func (x *globIndex) match(s string, hit func(id int32)) {
	if x.n == 0 {
		return
	}
	if len(s) >= 2 {
		matchGlobs(x.byPrefix[s[:2]], s, hit)
		matchGlobs(x.bySuffix[s[len(s)-2:]], s, hit)
	}
	matchGlobs(x.rest, s, hit)
}

// globLiterals returns the literal text before the first and after the
// last meta character of a pattern.
func globLiterals(p string) (prefix, suffix string) {
	first := strings.IndexAny(p, `*?[\`)
	if first < 0 {
		return p, p
	}
	last := strings.LastIndexAny(p, `*?[]\`)
	return p[:first], p[last+1:]
}
