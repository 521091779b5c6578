package measure

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
)

// CanonicalJSON returns v's canonical JSON form, the bytes the configuration
// digest is taken over: v is encoded with encoding/json, decoded into
// generic values (numbers kept as their literal text), and re-encoded with
// object keys sorted bytewise, no insignificant whitespace and no HTML
// escaping. Two configurations that marshal to the same JSON data model get
// the same bytes whatever their field order.
func CanonicalJSON(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	return CanonicalizeJSON(raw)
}

// CanonicalizeJSON rewrites one JSON document into the canonical form of
// CanonicalJSON. Trailing data and duplicate object keys are errors.
func CanonicalizeJSON(doc []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var g any
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("decoding config: %w", err)
	}
	// Only whitespace may follow (dec.More misses a stray '}' or ']').
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("decoding config: trailing data")
	}
	if err := checkDuplicateKeys(doc); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(g); err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// ConfigDigest returns SHA-256(CanonicalJSON(v)), the configuration
// measurement (attest.EventConfig), and the canonical bytes (for logs).
func ConfigDigest(v any) ([32]byte, []byte, error) {
	c, err := CanonicalJSON(v)
	if err != nil {
		return [32]byte{}, nil, err
	}
	return sha256.Sum256(c), c, nil
}

// checkDuplicateKeys walks doc's tokens and refuses an object with a repeated
// key (encoding/json silently keeps the last one, which would let two
// different texts canonicalise to one digest).
func checkDuplicateKeys(doc []byte) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	type frame struct {
		obj    bool
		keys   map[string]bool
		expect bool // next string token in an object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // EOF (syntax errors were reported by Decode)
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				if top != nil && top.obj {
					top.expect = true
				}
				stack = append(stack, &frame{obj: true, keys: map[string]bool{}, expect: true})
			case '[':
				if top != nil && top.obj {
					top.expect = true
				}
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
			}
		default:
			if top != nil && top.obj {
				if top.expect {
					k, _ := t.(string)
					if top.keys[k] {
						return fmt.Errorf("decoding config: duplicate key %q", k)
					}
					top.keys[k] = true
					top.expect = false
				} else {
					top.expect = true
				}
			}
		}
	}
}
