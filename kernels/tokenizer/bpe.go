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

// bpe splits one pre-token (already byte-encoded) into BPE symbols, with
// exactly the result of CLIPTokenizer.bpe: the last symbol carries "</w>";
// repeatedly the lowest-ranked adjacent pair is found and all its
// non-overlapping occurrences are merged left to right, until no pair has a
// rank. Instead of rescanning the word per merge (quadratic: a 16 KB word
// took seconds), candidate pairs sit in a heap ordered by (rank, position);
// one pass drains every occurrence of the minimum pair before the pairs it
// created are queued, which is the reference's order.
func (t *Tokenizer) bpe(token string) []string {
	if v, ok := t.cache.get(token); ok {
		return v
	}
	var syms []bpeSym
	for _, r := range token {
		syms = append(syms, bpeSym{s: string(r), prev: len(syms) - 1, next: len(syms) + 1})
	}
	syms[len(syms)-1].s += endOfWord
	syms[len(syms)-1].next = -1
	var h pairHeap
	for i := 0; i+1 < len(syms); i++ {
		h.pushPair(t, syms, i)
	}
	var batch []pairCand
	var pending []int
	for len(h) > 0 {
		first := h.pop()
		if !first.valid(syms) {
			continue
		}
		batch = append(batch[:0], first)
		for len(h) > 0 && h[0].rank == first.rank {
			batch = append(batch, h.pop())
		}
		pending = pending[:0]
		for _, c := range batch { // positions ascending: left to right
			if !c.valid(syms) {
				continue
			}
			l, r := &syms[c.left], &syms[c.right]
			l.s += r.s
			l.next = r.next
			r.dead = true
			if r.next >= 0 {
				syms[r.next].prev = c.left
			}
			if l.prev >= 0 {
				pending = append(pending, l.prev)
			}
			pending = append(pending, c.left)
		}
		for _, i := range pending {
			if !syms[i].dead {
				h.pushPair(t, syms, i)
			}
		}
	}
	word := make([]string, 0, len(syms))
	for i := 0; i >= 0; i = syms[i].next {
		word = append(word, syms[i].s)
	}
	t.cache.put(token, word)
	return word
}

type bpeSym struct {
	s          string
	prev, next int // -1 at the ends
	dead       bool
}

// pairCand is a candidate merge of syms[left] and syms[right] as they were
// when it was queued (ls, rs); valid checks it still describes the word.
type pairCand struct {
	rank, left, right int
	ls, rs            string
}

func (c pairCand) valid(syms []bpeSym) bool {
	l := &syms[c.left]
	return !l.dead && l.next == c.right && l.s == c.ls && syms[c.right].s == c.rs
}

// pairHeap is a binary min-heap on (rank, left).
type pairHeap []pairCand

func (h *pairHeap) pushPair(t *Tokenizer, syms []bpeSym, i int) {
	j := syms[i].next
	if j < 0 {
		return
	}
	rank, ok := t.ranks[syms[i].s+" "+syms[j].s]
	if !ok {
		return
	}
	*h = append(*h, pairCand{rank: rank, left: i, right: j, ls: syms[i].s, rs: syms[j].s})
	a := *h
	for k := len(a) - 1; k > 0; {
		p := (k - 1) / 2
		if !a[k].less(a[p]) {
			break
		}
		a[k], a[p] = a[p], a[k]
		k = p
	}
}

func (c pairCand) less(o pairCand) bool {
	return c.rank < o.rank || (c.rank == o.rank && c.left < o.left)
}

func (h *pairHeap) pop() pairCand {
	a := *h
	top := a[0]
	last := len(a) - 1
	a[0] = a[last]
	a = a[:last]
	for k := 0; ; {
		l, r, m := 2*k+1, 2*k+2, k
		if l < len(a) && a[l].less(a[m]) {
			m = l
		}
		if r < len(a) && a[r].less(a[m]) {
			m = r
		}
		if m == k {
			break
		}
		a[k], a[m] = a[m], a[k]
		k = m
	}
	*h = a
	return top
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
