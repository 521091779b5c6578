package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// basicTokenize mirrors transformers' BasicTokenizer(do_lower_case=True,
// strip_accents=False, do_split_on_punc=False, tokenize_chinese_chars=True)
// .tokenize, which the slow CLIPTokenizer uses when ftfy is not installed:
// clean the text, space out CJK ideographs, NFC, split on whitespace,
// lower-case each word (accents kept). The words are returned.
func basicTokenize(text string) []string {
	var b strings.Builder
	b.Grow(len(text) + 8)
	for _, r := range text {
		switch {
		case r == 0 || r == utf8.RuneError || isControl(r):
			// dropped (invalid UTF-8 arrives here as U+FFFD and is dropped too)
		case isWhitespace(r):
			b.WriteByte(' ')
		case isCJK(r):
			b.WriteByte(' ')
			b.WriteRune(r)
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	s := norm.NFC.String(b.String())
	words := strings.FieldsFunc(s, isPySpace)
	for i, w := range words {
		words[i] = pyLower(w)
	}
	return words
}

// isWhitespace is BasicTokenizer's _is_whitespace: space, \t, \n, \r and category Zs.
func isWhitespace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || unicode.Is(unicode.Zs, r)
}

// isControl is BasicTokenizer's _is_control: any category C (Cc, Cf, Cs, Co,
// Cn = unassigned) except \t, \n, \r.
func isControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs) {
		return true
	}
	return !isAssigned(r)
}

// isAssigned reports whether r had a general category other than Cn in
// Unicode 14.0.0, the version of the reference (Python 3.11's unicodedata):
// characters added later count as unassigned there, so they are dropped here
// too, whatever Unicode version Go's tables have.
func isAssigned(r rune) bool { return unicode.Is(assigned14, r) }

// isCJK is BasicTokenizer's _is_chinese_char (CJK Unified Ideographs blocks).
func isCJK(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0x3400 && r <= 0x4DBF) ||
		(r >= 0x20000 && r <= 0x2A6DF) || (r >= 0x2A700 && r <= 0x2B73F) ||
		(r >= 0x2B740 && r <= 0x2B81F) || (r >= 0x2B820 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) || (r >= 0x2F800 && r <= 0x2FA1F)
}

// isPySpace is Python's str.isspace (what str.split() splits on): the
// White_Space characters plus \x1c-\x1f.
func isPySpace(r rune) bool {
	return unicode.Is(unicode.White_Space, r) || (r >= 0x1c && r <= 0x1f)
}

// pyLower is Python's str.lower(): the simple lowercase mapping, plus the
// unconditional special case U+0130 → "i̇" and the Final_Sigma rule for U+03A3.
func pyLower(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	rs := []rune(s)
	for i, r := range rs {
		switch r {
		case 0x130:
			b.WriteString("i\u0307")
		case 0x3A3:
			if finalSigma(rs, i) {
				b.WriteRune(0x3C2)
			} else {
				b.WriteRune(0x3C3)
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// finalSigma: \p{cased}\p{case-ignorable}* Σ !(\p{case-ignorable}* \p{cased}).
func finalSigma(rs []rune, i int) bool {
	j := i - 1
	for j >= 0 && isCaseIgnorable(rs[j]) {
		j--
	}
	if j < 0 || !isCased(rs[j]) {
		return false
	}
	j = i + 1
	for j < len(rs) && isCaseIgnorable(rs[j]) {
		j++
	}
	return j == len(rs) || !isCased(rs[j])
}

func isCased(r rune) bool {
	return unicode.In(r, unicode.Lu, unicode.Ll, unicode.Lt, unicode.Other_Lowercase, unicode.Other_Uppercase)
}

func isCaseIgnorable(r rune) bool {
	switch r { // Word_Break MidLetter, MidNumLet, Single_Quote
	case 0x27, 0x2E, 0x3A, 0xB7, 0x387, 0x55F, 0x5F4, 0x2018, 0x2019, 0x2024, 0x2027,
		0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}
