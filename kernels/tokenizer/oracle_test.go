package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestOracleCases checks 400 extra prompts (Unicode edge cases: final sigma,
// U+0130, U+0345, long s in contractions, Unicode-15-only characters,
// controls, format characters, CJK, random code points) against ids from
// testdata/oracle.py, a transcription of the slow CLIPTokenizer onto the
// reference's own primitives that reproduces every golden vector.
func TestOracleCases(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "oracle_cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Cases []struct {
			Prompt string  `json:"prompt"`
			T1     []int64 `json:"tokenizer"`
			T2     []int64 `json:"tokenizer_2"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) < 400 {
		t.Fatalf("%d cases", len(f.Cases))
	}
	t1, t2 := loadTiny(t, "tokenizer"), loadTiny(t, "tokenizer_2")
	bad := 0
	for _, c := range f.Cases {
		for _, x := range []struct {
			tok  *Tokenizer
			want []int64
		}{{t1, c.T1}, {t2, c.T2}} {
			got := x.tok.EncodeUntruncated(c.Prompt)
			if got = got[1 : len(got)-1]; !slices.Equal(got, x.want) {
				if bad++; bad <= 10 {
					t.Errorf("%+q:\n got %v\nwant %v\ntokens %q", c.Prompt, got, x.want, x.tok.Tokenize(c.Prompt))
				}
			}
		}
	}
}
