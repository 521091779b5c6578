package measure

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzCanonicalizeJSON: never panics; the canonical form is valid JSON, a
// fixed point (canonicalising it again changes nothing), and describes the
// same data as the input.
func FuzzCanonicalizeJSON(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[true,null,"x"]}`, `{"a":{"a":1}}`, `[1e3, -0, 0.5]`, `"<&>"`, `{"a":1,"a":2}`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		c, err := CanonicalizeJSON(doc)
		if err != nil {
			return
		}
		if !json.Valid(c) {
			t.Fatalf("canonical form is not JSON: %q", c)
		}
		c2, err := CanonicalizeJSON(c)
		if err != nil || !bytes.Equal(c, c2) {
			t.Fatalf("not a fixed point: %q → %q (%v)", c, c2, err)
		}
		a, b := decodeNumbers(doc), decodeNumbers(c)
		if a == nil || b == nil {
			t.Fatal("round trip decode failed")
		}
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if !bytes.Equal(ja, jb) {
			t.Fatalf("data changed: %s vs %s", ja, jb)
		}
	})
}

func decodeNumbers(doc []byte) any {
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil {
		return nil
	}
	return &v
}
