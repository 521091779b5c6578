package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"unicode/utf8"
)

func TestAddJSONField(t *testing.T) {
	for in, want := range map[string]string{
		`{}`:                       `{"receipt":"R"}`,
		`{ }` + "\n":               `{ "receipt":"R"}` + "\n",
		`{"a":1}`:                  `{"a":1,"receipt":"R"}`,
		"{\"a\":[1,{\"b\":2}]}\n ": "{\"a\":[1,{\"b\":2}],\"receipt\":\"R\"}\n ",
	} {
		if got := string(addJSONField([]byte(in), "receipt", "R")); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}

// FuzzAddJSONField: for any JSON object without a "receipt" key, adding the
// field gives valid JSON whose other members are byte-for-byte unchanged.
func FuzzAddJSONField(f *testing.F) {
	f.Add([]byte(`{"id":"x","output":[{"url":"https://h/images/x/0_0.png","latencySeconds":1.5}],"status":"success"}`), "cmVjZWlwdA==")
	f.Add([]byte("{ \n}\n"), "")
	f.Add([]byte(`{"a":"}"}`), `"quoted"\`)
	f.Fuzz(func(t *testing.T, body []byte, value string) {
		if !isJSONObject(body) || !utf8.ValidString(value) {
			return // the gateway only ever adds base64 text
		}
		var before map[string]json.RawMessage
		if json.Unmarshal(body, &before) != nil {
			return
		}
		if _, ok := before["receipt"]; ok {
			return
		}
		out := addJSONField(body, "receipt", value)
		var after map[string]json.RawMessage
		if err := json.Unmarshal(out, &after); err != nil {
			t.Fatalf("result is not a JSON object: %v\n%q", err, out)
		}
		var got string
		if err := json.Unmarshal(after["receipt"], &got); err != nil || got != value {
			t.Fatalf("receipt %q, want %q", got, value)
		}
		if len(after) != len(before)+1 {
			t.Fatalf("%d members, want %d", len(after), len(before)+1)
		}
		for k, v := range before {
			if !bytes.Equal(after[k], v) {
				t.Fatalf("member %q changed: %s → %s", k, v, after[k])
			}
		}
	})
}

// FuzzParseNonce: the nonce parser never panics, and accepts exactly hex of
// 16..64 bytes.
func FuzzParseNonce(f *testing.F) {
	f.Add("nonce=00112233445566778899aabbccddeeff")
	f.Add("nonce=zz")
	f.Add("nonce=1&nonce=2")
	f.Add("x=1")
	f.Fuzz(func(t *testing.T, query string) {
		r := httptestRequest(query)
		if r == nil {
			return
		}
		n, err := parseNonce(r)
		if err != nil {
			return
		}
		if n != nil && (len(n) < MinNonceLen || len(n) > MaxNonceLen) {
			t.Fatalf("accepted a %d-byte nonce", len(n))
		}
	})
}

func httptestRequest(query string) *http.Request {
	u, err := url.Parse("https://gw" + EvidencePath)
	if err != nil {
		return nil
	}
	u.RawQuery = query
	return &http.Request{Method: http.MethodGet, URL: u}
}
