package measure

import (
	"crypto/sha256"
	"strings"
	"testing"
)

func TestCanonicalJSON(t *testing.T) {
	type cfg struct {
		Listen  string            `json:"listen"`
		Backend string            `json:"backend"`
		Limits  map[string]int    `json:"limits"`
		Labels  map[string]string `json:"labels,omitempty"`
		Ratio   float64           `json:"ratio"`
	}
	c := cfg{Listen: ":8443", Backend: "http://127.0.0.1:5000", Limits: map[string]int{"z": 1, "a": 2}, Ratio: 0.5,
		Labels: map[string]string{"k": "<&>"}}
	got, err := CanonicalJSON(c)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"backend":"http://127.0.0.1:5000","labels":{"k":"<&>"},"limits":{"a":2,"z":1},"listen":":8443","ratio":0.5}`
	if string(got) != want {
		t.Fatalf("canonical = %s\nwant        %s", got, want)
	}
	d, canon, err := ConfigDigest(c)
	if err != nil || d != sha256.Sum256([]byte(want)) || string(canon) != want {
		t.Fatalf("ConfigDigest = %x, %s, %v", d, canon, err)
	}
	// Whitespace and key order in a document do not matter.
	g2, err := CanonicalizeJSON([]byte(" {\n \"ratio\": 0.5, \"listen\":\":8443\", \"limits\":{\"z\":1,\"a\":2},\"labels\":{\"k\":\"<&>\"},\"backend\":\"http://127.0.0.1:5000\"}\n"))
	if err != nil || string(g2) != want {
		t.Fatalf("CanonicalizeJSON = %s, %v", g2, err)
	}
	// Numbers keep their literal text (no float rounding of large integers).
	g3, _ := CanonicalizeJSON([]byte(`{"n":12345678901234567890}`))
	if string(g3) != `{"n":12345678901234567890}` {
		t.Fatalf("big number: %s", g3)
	}
}

func TestCanonicalizeJSONRejects(t *testing.T) {
	for _, doc := range []string{`0}`, `{}]`, `{"a":1,"a":2}`, `{"a":{"b":1,"b":1}}`, `[{"x":1},{"x":1,"x":2}]`, `{} {}`, `{`, ``} {
		if _, err := CanonicalizeJSON([]byte(doc)); err == nil {
			t.Errorf("%q accepted", doc)
		}
	}
	// Same key at different levels and in sibling objects is fine.
	if _, err := CanonicalizeJSON([]byte(`{"a":{"a":1},"b":[{"a":1},{"a":2}]}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := CanonicalJSON(func() {}); err == nil || !strings.Contains(err.Error(), "encoding config") {
		t.Fatalf("unencodable: %v", err)
	}
}
