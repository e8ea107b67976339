package intel

// yaraRuleNames lists the rule names declared in a YARA source, in order.
// It is a light scanner, not a parser: it skips comments, quoted strings
// and regular expression literals and takes the identifier after each
// "rule" keyword. Sources are compiled for real by the YARA collector; this
// only names what they declare so that detections can say which rule
// matched.
func yaraRuleNames(src string) []string {
	var names []string
	expectName := false
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
				return names
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
			word := src[i:j]
			afterEq = word == "matches"
			if expectName {
				names = append(names, word)
				expectName = false
			} else if word == "rule" {
				expectName = true
			}
			i = j
		default:
			i++
		}
	}
	return names
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
