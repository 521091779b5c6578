package tokenizer

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// bpeNaive is CLIPTokenizer.bpe transcribed literally (rescan per merge).
func bpeNaive(t *Tokenizer, token string) []string {
	var word []string
	for _, r := range token {
		word = append(word, string(r))
	}
	word[len(word)-1] += endOfWord
	for len(word) > 1 {
		best, bestRank := -1, int(^uint(0)>>1)
		for i := 0; i+1 < len(word); i++ {
			if r, ok := t.ranks[word[i]+" "+word[i+1]]; ok && r < bestRank {
				best, bestRank = i, r
			}
		}
		if best < 0 {
			break
		}
		first, second := word[best], word[best+1]
		var merged []string
		for i := 0; i < len(word); {
			if i+1 < len(word) && word[i] == first && word[i+1] == second {
				merged = append(merged, first+second)
				i += 2
			} else {
				merged = append(merged, word[i])
				i++
			}
		}
		word = merged
	}
	return word
}

// TestBPEMatchesNaive compares the heap BPE with the literal algorithm on
// random words (letters, repeats that overlap, real words, byte symbols).
func TestBPEMatchesNaive(t *testing.T) {
	tok := loadTiny(t, "tokenizer")
	r := rand.New(rand.NewPCG(3, 4))
	alphabets := []string{"abcdefghijklmnopqrstuvwxyz", "aab", "ab", "eatrsnio", "ẽğłî"}
	words := []string{"a", "aa", "aaa", "aaaa", "aaaaa", "abababab", "llllll", "mississippi", "supercalifragilisticexpialidocious"}
	for i := 0; i < 1000; i++ {
		alpha := []rune(alphabets[r.IntN(len(alphabets))])
		var b strings.Builder
		for n := 1 + r.IntN(40); n > 0; n-- {
			b.WriteRune(alpha[r.IntN(len(alpha))])
		}
		words = append(words, b.String())
	}
	for _, w := range words {
		enc := encodeBytes(w)
		got, want := tok.bpe(enc), bpeNaive(tok, enc)
		if !slices.Equal(got, want) {
			t.Fatalf("bpe(%q) = %q, naive %q", w, got, want)
		}
	}
}

// TestBPELongWord: a 32 KB word of random letters encodes (BenchmarkEncode/
// long-word shows the time; the quadratic version needed minutes).
func TestBPELongWord(t *testing.T) {
	if ids := loadTiny(t, "tokenizer").Encode(randomWord(32 << 10)); len(ids) != 77 {
		t.Fatalf("%d ids", len(ids))
	}
}

func randomWord(n int) string {
	r := rand.New(rand.NewPCG(5, 6))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + r.IntN(26))
	}
	return string(b)
}
