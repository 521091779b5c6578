package tokenizer

import (
	"strings"
	"sync"
)

// byteEncoder is GPT-2/CLIP's bytes_to_unicode: printable bytes map to
// themselves, the others to U+0100.. in order.
var byteEncoder = func() [256]string {
	var enc [256]string
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			enc[b] = string(rune(b))
		} else {
			enc[b] = string(rune(256 + n))
			n++
		}
	}
	return enc
}()

const (
	endOfWord    = "</w>"
	maxCacheSize = 1 << 16 // BPE results kept per tokenizer (bounded: prompts are untrusted)
)

type bpeCache struct {
	mu sync.RWMutex
	m  map[string][]string
}

func (c *bpeCache) get(k string) ([]string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.m[k]
	return v, ok
}

func (c *bpeCache) put(k string, v []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) < maxCacheSize {
		c.m[k] = v
	}
}

// bpe splits one pre-token (already byte-encoded) into BPE symbols, exactly as
// CLIPTokenizer.bpe: the last symbol carries "</w>", and the lowest-ranked
// adjacent pair is merged (all its non-overlapping occurrences, left to
// right) until no pair has a rank.
func (t *Tokenizer) bpe(token string) []string {
	if v, ok := t.cache.get(token); ok {
		return v
	}
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
		merged := word[:0:0]
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
	t.cache.put(token, word)
	return word
}

// encodeBytes maps a pre-token's UTF-8 bytes through byteEncoder.
func encodeBytes(s string) string {
	var b strings.Builder
	b.Grow(2 * len(s))
	for i := 0; i < len(s); i++ {
		b.WriteString(byteEncoder[s[i]])
	}
	return b.String()
}
