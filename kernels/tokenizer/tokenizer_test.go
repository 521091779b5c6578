package tokenizer

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tdxl/tdxl/kernels/safetensors"
)

// goldenDir is $TDXL_GOLDEN_DIR or ../shared/golden/tiny-sdxl relative to the
// repository root. Missing data fails the test in CI and skips it elsewhere.
func goldenDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("TDXL_GOLDEN_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "golden", "tiny-sdxl")
	}
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("golden set missing (set TDXL_GOLDEN_DIR): %v", err)
		}
		t.Skipf("golden set missing: %v", err)
	}
	return dir
}

type goldenPrompt struct {
	Index     int    `json:"index"`
	Prompt    string `json:"prompt"`
	PromptHex string `json:"prompt_utf8_hex"`
	Tok       struct {
		InputIDs    []int64  `json:"input_ids"`
		Untruncated []int64  `json:"untruncated_ids"`
		Tokens      []string `json:"untruncated_tokens"`
		Truncated   bool     `json:"truncated"`
	}
}

func loadGolden(t *testing.T) (dir string, prompts map[string][]goldenPrompt, ids map[string][]int64) {
	dir = goldenDir(t)
	b, err := os.ReadFile(filepath.Join(dir, "vectors", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	prompts = map[string][]goldenPrompt{}
	for _, name := range []string{"tokenizer", "tokenizer_2"} {
		var raw struct {
			Prompts []map[string]json.RawMessage `json:"prompts"`
		}
		if err := json.Unmarshal(b, &raw); err != nil {
			t.Fatal(err)
		}
		for _, p := range raw.Prompts {
			var g goldenPrompt
			json.Unmarshal(p["index"], &g.Index)
			json.Unmarshal(p["prompt"], &g.Prompt)
			json.Unmarshal(p["prompt_utf8_hex"], &g.PromptHex)
			if err := json.Unmarshal(p[name], &g.Tok); err != nil {
				t.Fatal(err)
			}
			prompts[name] = append(prompts[name], g)
		}
	}
	f, err := safetensors.Open(filepath.Join(dir, "vectors", "tokenizer.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids = map[string][]int64{}
	for _, name := range []string{"tokenizer", "tokenizer_2"} {
		tt, ok := f.Tensor(name + ".input_ids")
		if !ok {
			t.Fatalf("%s.input_ids missing", name)
		}
		ids[name], err = tt.Int64()
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir, prompts, ids
}

// TestGoldenTokenizer: all golden prompts × both tokenizers, exact ids
// (tokenizer.safetensors), tokens and untruncated ids (tokenizer.json).
func TestGoldenTokenizer(t *testing.T) {
	_, prompts, ids := loadGolden(t)
	for _, name := range []string{"tokenizer", "tokenizer_2"} {
		tok := loadTiny(t, name)
		ps := prompts[name]
		if len(ps) == 0 || len(ids[name]) != len(ps)*77 {
			t.Fatalf("%s: %d prompts, %d ids", name, len(ps), len(ids[name]))
		}
		for i, p := range ps {
			raw, err := hex.DecodeString(p.PromptHex)
			if err != nil || string(raw) != p.Prompt {
				t.Fatalf("prompt %d: hex does not match text", i)
			}
			got := tok.Encode(p.Prompt)
			want := ids[name][i*77 : (i+1)*77]
			if !slices.Equal(got, want) {
				t.Errorf("%s prompt %d %q:\n got %v\nwant %v\ntokens %q\nwant   %q", name, i, p.Prompt, got, want, tok.Tokenize(p.Prompt), p.Tok.Tokens)
			}
			if !slices.Equal(got, p.Tok.InputIDs) {
				t.Errorf("%s prompt %d: tokenizer.json and .safetensors disagree with us", name, i)
			}
			if un := tok.EncodeUntruncated(p.Prompt); !slices.Equal(un, p.Tok.Untruncated) {
				t.Errorf("%s prompt %d untruncated:\n got %v\nwant %v", name, i, un, p.Tok.Untruncated)
			}
			toks := append(append([]string{"<|startoftext|>"}, tok.Tokenize(p.Prompt)...), "<|endoftext|>")
			if !slices.Equal(toks, p.Tok.Tokens) {
				t.Errorf("%s prompt %d tokens:\n got %q\nwant %q", name, i, toks, p.Tok.Tokens)
			}
		}
	}
}

var (
	tinyMu   sync.Mutex
	tinyToks = map[string]*Tokenizer{}
)

// loadTiny loads a golden tokenizer once per test binary (Load parses a 1 MB
// vocabulary; a Tokenizer is safe for concurrent use).
func loadTiny(t testing.TB, name string) *Tokenizer {
	t.Helper()
	dir := goldenDir(t)
	tinyMu.Lock()
	defer tinyMu.Unlock()
	if tok, ok := tinyToks[name]; ok {
		return tok
	}
	tok, err := Load(filepath.Join(dir, "model", name))
	if err != nil {
		t.Fatal(err)
	}
	tinyToks[name] = tok
	return tok
}

func TestPadAndSpecials(t *testing.T) {
	t1, t2 := loadTiny(t, "tokenizer"), loadTiny(t, "tokenizer_2")
	if t1.PadID() != 49407 || t2.PadID() != 0 || t1.BOSID() != 49406 || t2.EOSID() != 49407 || t1.MaxLength() != 77 {
		t.Fatalf("pad %d/%d bos %d eos %d", t1.PadID(), t2.PadID(), t1.BOSID(), t2.EOSID())
	}
	// "wow!!!": tokenizer gives wow</w> !!!</w>; tokenizer_2 splits every "!" out as id 0.
	if got := t1.Encode("wow!!!")[:4]; !slices.Equal(got, []int64{49406, 2781, 995, 49407}) {
		t.Errorf("tokenizer wow!!! = %v", got)
	}
	if got := t2.Encode("wow!!!")[:6]; !slices.Equal(got, []int64{49406, 2781, 0, 0, 0, 49407}) {
		t.Errorf("tokenizer_2 wow!!! = %v", got)
	}
	// A literal <|endoftext|> is id 49407 in the content.
	if got := t1.Encode("a<|endoftext|>b")[:5]; !slices.Equal(got, []int64{49406, 320, 49407, 321, 49407}) {
		t.Errorf("literal eos = %v", got)
	}
}

// TestInvalidUTF8 checks the documented choice: invalid bytes act as U+FFFD,
// which the cleaning step drops (so "a\xffb" encodes like "ab").
func TestInvalidUTF8(t *testing.T) {
	tok := loadTiny(t, "tokenizer")
	cases := map[string]string{
		"a\xffb":               "ab",
		"cat\xe2\x82 dog":      "cat dog",
		"\xc0\xaf\xed\xa0\x80": "",
		"x\x00y":               "xy",
		"a\ufffdb":             "ab",
	}
	for in, same := range cases {
		if got, want := tok.Encode(in), tok.Encode(same); !slices.Equal(got, want) {
			t.Errorf("Encode(%q) = %v, want as %q: %v", in, got, same, want)
		}
	}
}

func TestLowerAndCleaning(t *testing.T) {
	cases := map[string][]string{
		"ΟΔΟΣ ΣΑ":    {"οδος", "σα"},
		"İstanbul":   {"i\u0307stanbul"},
		"a\u2028b":   {"a", "b"},
		"x\u200by":   {"xy"},
		"猫cat":       {"猫", "cat"},
		"  \t\r\n  ": nil,
		"e\u0301":    {"é"},
	}
	for in, want := range cases {
		if got := basicTokenize(in); !slices.Equal(got, want) {
			t.Errorf("basicTokenize(%q) = %q, want %q", in, got, want)
		}
	}
	var words []string
	splitWords("it's 'sx ''s rock'n 12ab <|endoftext|>!?", func(w string) bool { words = append(words, w); return true })
	want := []string{"it", "'s", "'s", "x", "''", "s", "rock", "'", "n", "1", "2", "ab", "<|endoftext|>", "!?"}
	if !slices.Equal(words, want) {
		t.Errorf("splitWords = %q, want %q", words, want)
	}
}

func TestLoadErrors(t *testing.T) {
	src := filepath.Join(goldenDir(t), "model", "tokenizer")
	mk := func(vocab, merges, cfg string) string {
		d := t.TempDir()
		if vocab != "-" {
			os.WriteFile(filepath.Join(d, "vocab.json"), []byte(vocab), 0o644)
		}
		if merges != "-" {
			os.WriteFile(filepath.Join(d, "merges.txt"), []byte(merges), 0o644)
		}
		if cfg != "" {
			os.WriteFile(filepath.Join(d, "tokenizer_config.json"), []byte(cfg), 0o644)
		}
		return d
	}
	merges, _ := os.ReadFile(filepath.Join(src, "merges.txt"))
	for name, d := range map[string]string{
		"no vocab":    mk("-", string(merges), ""),
		"bad vocab":   mk(`{"a": 1,`, string(merges), ""),
		"empty vocab": mk(`{}`, string(merges), ""),
		"negative id": mk(`{"a": -1}`, string(merges), ""),
		"no merges":   mk(`{"a": 1}`, "-", ""),
		"bad config":  mk(`{"a": 1}`, "#v\n", `{"pad_token": 5}`),
		"bad maxlen":  mk(`{"a": 1}`, "#v\n", `{"model_max_length": 1}`),
		"missing dir": filepath.Join(t.TempDir(), "nope"),
	} {
		if _, err := Load(d); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzEncode(f *testing.F) {
	for _, s := range []string{"", "A panda listening to music", "wow!!!", "a <|endoftext|> b", "東京タワー", "\xff\xfe", "ΟΔΟΣ", "it's rock'n'roll", "<|startoftext|><|startoftext|>", strings.Repeat("a cat! ", 60)} {
		f.Add(s)
	}
	toks := []*Tokenizer{loadTiny(f, "tokenizer"), loadTiny(f, "tokenizer_2")}
	f.Fuzz(func(t *testing.T, s string) {
		for _, tok := range toks {
			ids := tok.Encode(s)
			if len(ids) != 77 || ids[0] != tok.BOSID() {
				t.Fatalf("Encode(%q): %d ids, first %d", s, len(ids), ids[0])
			}
			eos := slices.Index(ids[1:], tok.EOSID())
			for _, id := range ids {
				if id < 0 || id >= tok.VocabSize() {
					t.Fatalf("Encode(%q): id %d out of range", s, id)
				}
			}
			if eos < 0 {
				t.Fatalf("Encode(%q): no EOS", s)
			}
			// Encode (which stops tokenizing early) = truncated, padded EncodeUntruncated.
			un := tok.EncodeUntruncated(s)
			want := append([]int64{}, un[:min(len(un)-1, 76)]...)
			want = append(want, tok.EOSID())
			for len(want) < 77 {
				want = append(want, tok.PadID())
			}
			if !slices.Equal(ids, want) {
				t.Fatalf("Encode(%q) = %v, untruncated %v", s, ids, un)
			}
		}
	})
}

// TestSpecialTokenForms: special tokens may be strings or {"content": ...}
// objects (both forms occur in the real sdxl-turbo files), and
// special_tokens_map.json overrides tokenizer_config.json.
func TestSpecialTokenForms(t *testing.T) {
	var f specialFile
	js := `{"bos_token": "<s>", "pad_token": {"content": "!", "normalized": false}, "added_tokens_decoder": {"0": {"content": "!"}}}`
	if err := json.Unmarshal([]byte(js), &f); err != nil {
		t.Fatal(err)
	}
	if *f.BOS != "<s>" || *f.PAD != "!" || f.EOS != nil || f.AddedTokens["0"].Content != "!" {
		t.Fatalf("%+v", f)
	}
	if err := json.Unmarshal([]byte(`{"pad_token": {"nocontent": 1}}`), &f); err == nil {
		t.Error("object without content accepted")
	}
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, "vocab.json"), []byte(`{"a</w>": 0, "!": 1, "<|startoftext|>": 2, "<|endoftext|>": 3}`), 0o644)
	os.WriteFile(filepath.Join(d, "merges.txt"), []byte("#version: 0.2\n"), 0o644)
	os.WriteFile(filepath.Join(d, "tokenizer_config.json"), []byte(`{"pad_token": "<|endoftext|>", "model_max_length": 5}`), 0o644)
	os.WriteFile(filepath.Join(d, "special_tokens_map.json"), []byte(`{"pad_token": {"content": "!"}, "unk_token": "<unk>"}`), 0o644)
	tok, err := Load(d)
	if err != nil {
		t.Fatal(err)
	}
	// pad "!" from special_tokens_map (id 1); "<unk>" is not in the vocabulary: new id 4.
	if got := tok.Encode("a!b a"); !slices.Equal(got, []int64{2, 0, 1, 4, 3}) || tok.PadID() != 1 || tok.VocabSize() != 5 {
		t.Errorf("Encode = %v, pad %d, vocab %d", got, tok.PadID(), tok.VocabSize())
	}
}
