package intel

import (
	"encoding/json"
	"strings"
)

// yaraRuleNames lists the rule names declared in a YARA source, in order.
// It is a light scanner, not a parser: it skips comments, quoted strings
// and regular expression literals and takes the identifier after each
// "rule" keyword. Sources are compiled for real by the YARA collector; this
// only names what they declare so that detections can say which rule
// matched.
func yaraRuleNames(src string) []string {
	var names []string
	expectName := false
	scanYARA(src, func(word string, _ int) {
		if expectName {
			names = append(names, word)
			expectName = false
		} else if word == "rule" {
			expectName = true
		}
	}, nil)
	return names
}

// scanYARA walks a YARA source, skipping comments, quoted strings and
// regular expression literals, and calls word for each identifier and
// brace (if not nil) for each '{' and '}' outside them, with offsets.
func scanYARA(src string, word func(w string, at int), brace func(open bool, at int)) {
	// afterEq: the last token was '=' or "matches", so '/' opens a
	// regular expression rather than dividing.
	afterEq := false
	for i := 0; i < len(src); {
		c := src[i]
		wasEq := afterEq
		if c != ' ' && c != '\t' {
			afterEq = c == '='
		}
		switch {
		case c == '/' && wasEq:
			// A regular expression literal: it may hold quotes and words.
			i++
			for i < len(src) && src[i] != '/' && src[i] != '\n' {
				if src[i] == '\\' {
					i++
				}
				i++
			}
			i++
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := indexFrom(src, "*/", i+2)
			if end < 0 {
				return
			}
			i = end + 2
		case c == '"':
			i++
			for i < len(src) && src[i] != '"' && src[i] != '\n' {
				if src[i] == '\\' {
					i++
				}
				i++
			}
			i++
		case isIdentStart(c):
			j := i
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			afterEq = src[i:j] == "matches"
			word(src[i:j], i)
			i = j
		case c == '{' || c == '}':
			if brace != nil {
				brace(c == '{', i)
			}
			i++
		default:
			i++
		}
	}
}

// indexFrom is strings.Index starting at from.
func indexFrom(s, sub string, from int) int {
	for i := from; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdentPart(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9'
}

// yaraChunkBytes bounds the JSON-encoded source of one YARA indicator cut
// from a larger file: an intel update is at most 64 KiB, and the op around
// the source needs room too.
const yaraChunkBytes = 48 << 10

// jsonLen is the length of s encoded as a JSON string, quotes excluded.
func jsonLen(s string) int {
	b, _ := json.Marshal(s)
	return len(b) - 2
}

// splitYARA cuts src into sources of whole top-level rules, each at most
// yaraChunkBytes once JSON-encoded; every part after the first starts with
// the file's import lines. ok is false when src cannot be cut that way: a
// single rule is too large, or the braces do not balance.
func splitYARA(src string) (parts []string, ok bool) {
	var imports []string
	var cuts []int // just after each top-level rule's closing brace
	depth, bad := 0, false
	scanYARA(src, func(w string, at int) {
		if depth == 0 && w == "import" {
			line, _, _ := strings.Cut(src[at:], "\n")
			imports = append(imports, strings.TrimSpace(line))
		}
	}, func(open bool, at int) {
		if open {
			depth++
			return
		}
		depth--
		switch {
		case depth < 0:
			bad = true
		case depth == 0:
			cuts = append(cuts, at+1)
		}
	})
	if bad || depth != 0 || len(cuts) == 0 {
		return nil, false
	}
	cuts[len(cuts)-1] = len(src) // the tail goes with the last rule

	prefix := ""
	if len(imports) > 0 {
		prefix = strings.Join(imports, "\n") + "\n"
	}
	var cur strings.Builder
	size, prev := 0, 0
	for _, cut := range cuts {
		piece := src[prev:cut]
		prev = cut
		n := jsonLen(piece)
		if jsonLen(prefix)+n > yaraChunkBytes {
			return nil, false
		}
		if cur.Len() > 0 && size+n > yaraChunkBytes {
			parts = append(parts, cur.String())
			cur.Reset()
			cur.WriteString(prefix)
			size = jsonLen(prefix)
		}
		cur.WriteString(piece)
		size += n
	}
	return append(parts, cur.String()), true
}
