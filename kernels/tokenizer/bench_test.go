package tokenizer

import (
	"fmt"
	"testing"
)

// BenchmarkEncode encodes a long prompt with a warm BPE cache (the common
// case: the same words again) and with a cold one (every word new).
func BenchmarkEncode(b *testing.B) {
	tok := loadTiny(b, "tokenizer_2")
	const prompt = "A highly detailed digital painting of a majestic castle on a hill at sunset, surrounded by lush green forests, flowing rivers, distant snow-capped mountains, dramatic lighting!"
	b.Run("warm", func(b *testing.B) {
		for b.Loop() {
			tok.Encode(prompt)
		}
	})
	b.Run("long-word-16KB", func(b *testing.B) {
		w := randomWord(16 << 10)
		for b.Loop() {
			tok.cache = bpeCache{m: map[string][]string{}}
			tok.Encode(w)
		}
	})
	b.Run("cold", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			tok.Encode(fmt.Sprintf("zq%dxv castlewq%d mountainsyk%d", i, i, i))
		}
	})
}
