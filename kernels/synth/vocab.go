package synth

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// writeTokenizers fills tokenizer/ and tokenizer_2/ (whose configs the preset
// already wrote) with vocab.json and merges.txt: copied from src, or generated.
func writeTokenizers(dir, src string) error {
	var vocab, merges []byte
	if src != "" {
		from := src
		if _, err := os.Stat(filepath.Join(from, "vocab.json")); err != nil {
			from = filepath.Join(src, "tokenizer")
		}
		var err error
		if vocab, err = os.ReadFile(filepath.Join(from, "vocab.json")); err != nil {
			return fmt.Errorf("synth: tokenizer: %w", err)
		}
		if merges, err = os.ReadFile(filepath.Join(from, "merges.txt")); err != nil {
			return fmt.Errorf("synth: tokenizer: %w", err)
		}
	} else {
		var err error
		vocab, merges, err = generateVocab(clipVocabSize)
		if err != nil {
			return err
		}
	}
	for _, d := range []string{"tokenizer", "tokenizer_2"} {
		if err := writeFileSync(filepath.Join(dir, d, "vocab.json"), vocab); err != nil {
			return err
		}
		if err := writeFileSync(filepath.Join(dir, d, "merges.txt"), merges); err != nil {
			return err
		}
	}
	return nil
}

// clipVocabSize is the vocab_size of both presets' text encoders.
const clipVocabSize = 49408

// bytesToUnicode is CLIP's byte → symbol table (printable bytes map to
// themselves, the rest to U+0100 onwards, in byte order).
func bytesToUnicode() [256]string {
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
}

// generateVocab builds a valid CLIP-style BPE vocabulary with size entries,
// laid out like CLIP's: ids 0-255 the byte symbols, 256-511 the same with
// "</w>", then one token per merge, then <|startoftext|> (size-2) and
// <|endoftext|> (size-1). Merges join lower-case letters into 2-, 3- and
// 4-letter pieces, word-final variants first, so English prompts tokenize
// into a few pieces per word.
func generateVocab(size int) (vocabJSON, mergesTxt []byte, err error) {
	nMerges := size - 512 - 2
	if nMerges < 0 || nMerges > 49152-256-2 {
		return nil, nil, fmt.Errorf("synth: %w: vocabulary size %d", ErrOptions, size)
	}
	vocab := make(map[string]int, size)
	enc := bytesToUnicode()
	for b := 0; b < 256; b++ {
		vocab[enc[b]] = b
		vocab[enc[b]+"</w>"] = 256 + b
	}
	var m strings.Builder
	m.WriteString("#version: 0.2\n")
	added := 0
	add := func(a, b string) bool {
		if added == nMerges {
			return false
		}
		tok := a + b
		if _, dup := vocab[tok]; dup {
			return true
		}
		vocab[tok] = 512 + added
		added++
		m.WriteString(a + " " + b + "\n")
		return true
	}
	const letters = "abcdefghijklmnopqrstuvwxyz"
	word := func(i, length int) string {
		b := make([]byte, length)
		for k := length - 1; k >= 0; k-- {
			b[k] = letters[i%26]
			i /= 26
		}
		return string(b)
	}
fill:
	for length, count := 2, 26*26; length <= 4; length, count = length+1, count*26 {
		for i := 0; i < count; i++ {
			w := word(i, length)
			head, last := w[:length-1], w[length-1:]
			if !add(head, last+"</w>") || !add(head, last) {
				break fill
			}
		}
	}
	if added != nMerges {
		return nil, nil, fmt.Errorf("synth: generated only %d of %d merges", added, nMerges)
	}
	vocab["<|startoftext|>"] = size - 2
	vocab["<|endoftext|>"] = size - 1
	vb, err := json.Marshal(vocab)
	if err != nil {
		return nil, nil, fmt.Errorf("synth: %w", err)
	}
	return vb, []byte(m.String()), nil
}
