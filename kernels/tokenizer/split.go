package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// splitWords applies CLIP's pre-tokenizer regex (regex module, IGNORECASE)
//
//	<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//
// with findall semantics: at each position the first alternative that matches
// wins; positions where nothing matches (whitespace) are skipped. It stops
// early when emit returns false.
func splitWords(text string, emit func(string) bool) {
	for pos := 0; pos < len(text); {
		n := matchAt(text[pos:])
		if n == 0 {
			_, sz := utf8.DecodeRuneInString(text[pos:])
			pos += sz
			continue
		}
		if !emit(text[pos : pos+n]) {
			return
		}
		pos += n
	}
}

var contractions = []string{"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"}

// matchAt returns the length of the regex match at the start of s (0 if none).
func matchAt(s string) int {
	for _, lit := range []string{bosToken, eosToken} {
		if hasPrefixFold(s, lit) {
			return len(lit)
		}
	}
	if len(s) > 1 && s[0] == '\'' {
		for _, c := range contractions {
			if hasPrefixFold(s, c) {
				return prefixFoldLen(s, c)
			}
		}
	}
	r, sz := utf8.DecodeRuneInString(s)
	switch {
	case unicode.IsLetter(r):
		n := sz
		for n < len(s) {
			r, sz := utf8.DecodeRuneInString(s[n:])
			if !unicode.IsLetter(r) {
				break
			}
			n += sz
		}
		return n
	case unicode.IsNumber(r):
		return sz
	case isRegexSpace(r):
		return 0
	}
	n := sz
	for n < len(s) {
		r, sz := utf8.DecodeRuneInString(s[n:])
		if unicode.IsLetter(r) || unicode.IsNumber(r) || isRegexSpace(r) {
			break
		}
		n += sz
	}
	return n
}

// isRegexSpace is \s of the regex module (Unicode White_Space), extended by
// the one character no alternative matches under IGNORECASE: U+0345 COMBINING
// GREEK YPOGEGRAMMENI (Mn) is not in [\p{L}], but because it case-folds to
// iota it is not in [^\s\p{L}\p{N}] either (checked over every code point
// with the regex module), so findall skips it like whitespace.
func isRegexSpace(r rune) bool { return r == 0x345 || unicode.Is(unicode.White_Space, r) }

// hasPrefixFold reports whether s starts with the ASCII literal lit under
// simple case folding (the pattern is compiled with IGNORECASE: 'S matches 's,
// and so does U+017F LATIN SMALL LETTER LONG S).
func hasPrefixFold(s, lit string) bool { return prefixFoldLen(s, lit) > 0 }

func prefixFoldLen(s, lit string) int {
	n := 0
	for i := 0; i < len(lit); i++ {
		if n >= len(s) {
			return 0
		}
		r, sz := utf8.DecodeRuneInString(s[n:])
		if !foldEq(r, rune(lit[i])) {
			return 0
		}
		n += sz
	}
	return n
}

func foldEq(r, l rune) bool {
	if r == l {
		return true
	}
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f == l {
			return true
		}
	}
	return false
}
