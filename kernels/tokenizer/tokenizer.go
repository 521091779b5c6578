// Package tokenizer is CLIP's byte-level BPE tokenizer, as transformers' slow
// CLIPTokenizer runs it without ftfy (the reference of the golden vectors):
//
//  1. the raw prompt is split, case-sensitively, around the added/special
//     tokens (<|startoftext|>, <|endoftext|>, and the pad token, which is "!"
//     for SDXL's tokenizer_2: every "!" becomes id 0 there);
//  2. each other piece goes through BasicTokenizer: NUL, U+FFFD and control /
//     format / unassigned characters are dropped, whitespace becomes ' ', CJK
//     ideographs are spaced out, NFC, split on whitespace, lower-cased
//     (accents kept; no HTML unescaping);
//  3. CLIP's regex splits the words, each word's UTF-8 bytes are mapped to
//     unicode symbols and merged by BPE (last symbol carries "</w>");
//  4. Encode truncates to model_max_length-2 tokens, adds BOS/EOS and pads
//     with the pad token's id.
//
// Invalid UTF-8 in a prompt is treated as Python would see it after
// bytes.decode("utf-8", errors="replace"): each invalid sequence becomes
// U+FFFD, which step 2 drops. Encode never fails and never panics.
//
// Pure Go (no cgo). A Tokenizer is safe for concurrent use.
package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

const (
	bosToken = "<|startoftext|>"
	eosToken = "<|endoftext|>"
	// maxMerges mirrors CLIPTokenizer reading merges.txt lines [1 : 49152-256-2+1].
	maxMerges = 49152 - 256 - 2
)

// ErrInvalid wraps every Load error about the folder's contents.
var ErrInvalid = errors.New("invalid tokenizer files")

// Tokenizer encodes prompts to CLIP token ids.
type Tokenizer struct {
	vocab     map[string]int64
	ranks     map[string]int // "first second" -> merge rank
	added     map[string]int64
	specials  []string // no-split tokens, longest first
	bosID     int64
	eosID     int64
	padID     int64
	unkID     int64
	maxLen    int
	vocabSize int64
	padToken  string
	cache     bpeCache
}

// Load reads vocab.json, merges.txt and (optional) tokenizer_config.json /
// special_tokens_map.json from dir.
func Load(dir string) (*Tokenizer, error) {
	t := &Tokenizer{added: map[string]int64{}, maxLen: 77, cache: bpeCache{m: map[string][]string{}}}
	if err := readJSONFile(filepath.Join(dir, "vocab.json"), &t.vocab, true); err != nil {
		return nil, err
	}
	if len(t.vocab) == 0 {
		return nil, fmt.Errorf("tokenizer: %s: %w: empty vocabulary", filepath.Join(dir, "vocab.json"), ErrInvalid)
	}
	for tok, id := range t.vocab {
		if id < 0 {
			return nil, fmt.Errorf("tokenizer: %s: %w: negative id for %q", filepath.Join(dir, "vocab.json"), ErrInvalid, tok)
		}
	}
	if err := t.loadMerges(filepath.Join(dir, "merges.txt")); err != nil {
		return nil, err
	}
	if err := t.loadSpecials(dir); err != nil {
		return nil, err
	}
	return t, nil
}

func readJSONFile(path string, v any, required bool) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !required {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("tokenizer: %s: %w: %v", path, ErrInvalid, err)
	}
	return nil
}

func (t *Tokenizer) loadMerges(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 0 {
		lines = lines[1:] // "#version: 0.2"
	}
	if len(lines) > maxMerges {
		lines = lines[:maxMerges]
	}
	t.ranks = make(map[string]int, len(lines))
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) == 2 {
			t.ranks[f[0]+" "+f[1]] = i
		}
	}
	return nil
}

// tokenValue is a special token given as "text" or {"content": "text", ...}.
type tokenValue string

func (v *tokenValue) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*v = tokenValue(s)
		return nil
	}
	var o struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(b, &o); err != nil || o.Content == nil {
		return fmt.Errorf("special token must be a string or {\"content\": ...}")
	}
	*v = tokenValue(*o.Content)
	return nil
}

type specialFile struct {
	BOS            *tokenValue `json:"bos_token"`
	EOS            *tokenValue `json:"eos_token"`
	UNK            *tokenValue `json:"unk_token"`
	PAD            *tokenValue `json:"pad_token"`
	ModelMaxLength *float64    `json:"model_max_length"`
	AddedTokens    map[string]struct {
		Content string `json:"content"`
	} `json:"added_tokens_decoder"`
}

func (t *Tokenizer) loadSpecials(dir string) error {
	var cfg, smap specialFile
	if err := readJSONFile(filepath.Join(dir, "tokenizer_config.json"), &cfg, false); err != nil {
		return err
	}
	if err := readJSONFile(filepath.Join(dir, "special_tokens_map.json"), &smap, false); err != nil {
		return err
	}
	// CLIPTokenizer defaults, overridden by tokenizer_config.json, then by special_tokens_map.json.
	names := map[string]string{"bos": bosToken, "eos": eosToken, "unk": eosToken, "pad": eosToken}
	for _, f := range []specialFile{cfg, smap} {
		for k, v := range map[string]*tokenValue{"bos": f.BOS, "eos": f.EOS, "unk": f.UNK, "pad": f.PAD} {
			if v != nil {
				names[k] = string(*v)
			}
		}
	}
	if cfg.ModelMaxLength != nil {
		n := *cfg.ModelMaxLength
		if n < 2 || n > 1<<16 || n != float64(int(n)) {
			return fmt.Errorf("tokenizer: %s: %w: model_max_length %v", dir, ErrInvalid, n)
		}
		t.maxLen = int(n)
	}
	for idStr, tok := range cfg.AddedTokens {
		id, err := strconv.ParseInt(idStr, 10, 64)
		if err != nil || id < 0 || tok.Content == "" {
			return fmt.Errorf("tokenizer: %s: %w: added token %q", dir, ErrInvalid, idStr)
		}
		t.added[tok.Content] = id
	}
	if err := t.assignSpecials(names); err != nil {
		return fmt.Errorf("tokenizer: %s: %w", dir, err)
	}
	return nil
}

// assignSpecials gives the bos/eos/unk/pad tokens their ids: an added
// token's id, else the vocabulary's, else a new id after the largest (as
// transformers appends unknown special tokens). All added tokens become the
// no-split specials, longest first.
func (t *Tokenizer) assignSpecials(names map[string]string) error {
	next := int64(0)
	for _, id := range t.vocab {
		next = max(next, id+1)
	}
	for _, id := range t.added {
		next = max(next, id+1)
	}
	for _, k := range []string{"bos", "eos", "unk", "pad"} {
		tok := names[k]
		if tok == "" {
			return fmt.Errorf("%w: empty %s_token", ErrInvalid, k)
		}
		if _, ok := t.added[tok]; ok {
			continue
		}
		if id, ok := t.vocab[tok]; ok {
			t.added[tok] = id
		} else {
			t.added[tok] = next
			next++
		}
	}
	t.bosID, t.eosID, t.unkID, t.padID = t.added[names["bos"]], t.added[names["eos"]], t.added[names["unk"]], t.added[names["pad"]]
	t.padToken = names["pad"]
	t.vocabSize = next
	for tok := range t.added {
		t.specials = append(t.specials, tok)
	}
	sort.Slice(t.specials, func(i, j int) bool {
		if len(t.specials[i]) != len(t.specials[j]) {
			return len(t.specials[i]) > len(t.specials[j])
		}
		return t.specials[i] < t.specials[j]
	})
	return nil
}

// PadID is the id Encode pads with (49407 for tokenizer/, 0 = "!" for tokenizer_2/).
func (t *Tokenizer) PadID() int64 { return t.padID }

// BOSID and EOSID are the ids of <|startoftext|> and <|endoftext|>.
func (t *Tokenizer) BOSID() int64 { return t.bosID }

// EOSID is the id Encode ends the content with.
func (t *Tokenizer) EOSID() int64 { return t.eosID }

// MaxLength is the length of Encode's output (model_max_length, 77).
func (t *Tokenizer) MaxLength() int { return t.maxLen }

// VocabSize is one more than the largest id the tokenizer can produce.
func (t *Tokenizer) VocabSize() int64 { return t.vocabSize }

// Tokenize returns the prompt's tokens (BPE symbols and special tokens),
// without BOS/EOS, truncation or padding.
func (t *Tokenizer) Tokenize(prompt string) []string { return t.tokenize(prompt, -1) }

// tokenize stops once it has at least limit tokens (limit < 0: no limit).
// Tokens never depend on text after the regex match that produced them, so
// the first limit tokens are those of the whole prompt.
func (t *Tokenizer) tokenize(prompt string, limit int) []string {
	var out []string
	full := func() bool { return limit >= 0 && len(out) >= limit }
	for _, piece := range t.splitSpecials(prompt) {
		if full() {
			break
		}
		if _, ok := t.added[piece]; ok {
			out = append(out, piece)
			continue
		}
		text := strings.Join(basicTokenize(piece), " ")
		splitWords(text, func(w string) bool {
			if w == bosToken || w == eosToken {
				out = append(out, w) // CLIPTokenizer's pre-seeded BPE cache
			} else {
				out = append(out, t.bpe(encodeBytes(w))...)
			}
			return !full()
		})
	}
	return out
}

// EncodeUntruncated returns BOS, every token's id, EOS (no truncation, no padding).
func (t *Tokenizer) EncodeUntruncated(prompt string) []int64 { return t.ids(t.tokenize(prompt, -1)) }

func (t *Tokenizer) ids(toks []string) []int64 {
	ids := make([]int64, 0, len(toks)+2)
	ids = append(ids, t.bosID)
	for _, tok := range toks {
		ids = append(ids, t.tokenID(tok))
	}
	return append(ids, t.eosID)
}

// Encode returns exactly MaxLength() ids: BOS, at most MaxLength()-2 content
// ids, EOS, then PadID() up to the length.
func (t *Tokenizer) Encode(prompt string) []int64 {
	ids := t.ids(t.tokenize(prompt, t.maxLen-2))
	content := ids[1 : len(ids)-1]
	if len(content) > t.maxLen-2 {
		content = content[:t.maxLen-2]
	}
	out := make([]int64, 0, t.maxLen)
	out = append(out, t.bosID)
	out = append(out, content...)
	out = append(out, t.eosID)
	for len(out) < t.maxLen {
		out = append(out, t.padID)
	}
	return out
}

func (t *Tokenizer) tokenID(tok string) int64 {
	if id, ok := t.added[tok]; ok {
		return id
	}
	if id, ok := t.vocab[tok]; ok {
		return id
	}
	return t.unkID
}

// splitSpecials splits s around added tokens (leftmost, then longest match).
func (t *Tokenizer) splitSpecials(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); {
		matched := ""
		for _, sp := range t.specials {
			if strings.HasPrefix(s[i:], sp) {
				matched = sp
				break
			}
		}
		if matched == "" {
			i++
			continue
		}
		if start < i {
			out = append(out, s[start:i])
		}
		out = append(out, matched)
		i += len(matched)
		start = i
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}
