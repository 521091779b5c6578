package policy

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ErrInvalid is wrapped by every parse and validation error (errors.Is(err, policy.ErrInvalid)).
var ErrInvalid = errors.New("invalid policy")

// MaxSize is the largest policy file accepted (policies are small; this bounds the parser).
const MaxSize = 1 << 20

// Problem is one error or warning in a policy file.
type Problem struct {
	File string // file name as given ("" for unnamed input)
	Line int    // 1-based line, 0 if unknown
	Msg  string // what is wrong, lower case, no final period
	Hint string // how to fix it ("" if none)
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.File == "" {
		b.WriteString("policy")
	}
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
	}
	b.WriteString(": " + p.Msg)
	if p.Hint != "" {
		b.WriteString(" (hint: " + p.Hint + ")")
	}
	return b.String()
}

// Error lists every problem found in one file. errors.Is(err, ErrInvalid) holds.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Load reads and parses a policy file.
func Load(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading policy: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading policy %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse parses a policy document (YAML or JSON) strictly. name is used in messages and as
// Policy.Source. The returned error is an *Error listing every problem with its line.
func Parse(name string, data []byte) (*Policy, error) {
	fail := func(line int, msg, hint string) (*Policy, error) {
		return nil, &Error{[]Problem{{File: name, Line: line, Msg: msg, Hint: hint}}}
	}
	if len(data) > MaxSize {
		return fail(0, fmt.Sprintf("file is %d bytes, more than the %d allowed", len(data), MaxSize), "")
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return fail(0, "empty policy", "start with `apiVersion: "+APIVersion+"`")
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		line, msg := splitYAMLError(err.Error())
		return fail(line, "syntax error: "+msg, "")
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return fail(extra.Line, "more than one YAML document", "keep one policy per file")
	}
	var p Policy
	var probs []Problem
	dec = yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			line, msg := splitYAMLError(err.Error())
			return fail(line, msg, "")
		}
		for _, s := range te.Errors {
			probs = append(probs, typeErrorProblem(name, s))
		}
	}
	p.Source = name
	p.Raw = append([]byte(nil), data...)
	p.Lines = map[string]int{}
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		if root.Content[0].Kind != yaml.MappingNode {
			return fail(root.Content[0].Line, "a policy must be a mapping of keys", "start with `apiVersion: "+APIVersion+"`")
		}
		collectLines(root.Content[0], "", p.Lines)
	}
	if len(probs) == 0 {
		probs = append(probs, validate(&p)...)
	}
	if len(probs) > 0 {
		sort.SliceStable(probs, func(i, j int) bool { return probs[i].Line < probs[j].Line })
		return nil, &Error{probs}
	}
	return &p, nil
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

func splitYAMLError(s string) (int, string) {
	s = strings.TrimPrefix(s, "yaml: ")
	if m := yamlLineRE.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, m[2]
	}
	return 0, s
}

const hintSep = "\x00hint:"

var unknownFieldRE = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)

func typeErrorProblem(file, s string) Problem {
	hint := ""
	if i := strings.Index(s, hintSep); i >= 0 {
		hint = s[i+len(hintSep):]
		s = s[:i]
	}
	line, msg := splitYAMLError(s)
	if m := unknownFieldRE.FindStringSubmatch(msg); m != nil {
		keys := knownKeys(m[2])
		msg = fmt.Sprintf("unknown key %q", m[1])
		if sec := sectionName(m[2]); sec != "" {
			msg += " in " + sec
		}
		hint = "known keys: " + strings.Join(keys, ", ")
		if best := closest(m[1], keys); best != "" {
			hint = "did you mean " + strconv.Quote(best) + "? " + hint
		}
	}
	return Problem{File: file, Line: line, Msg: msg, Hint: hint}
}

var sectionTypes = map[string]struct {
	t    reflect.Type
	name string
}{
	"policy.Policy":    {reflect.TypeOf(Policy{}), "the policy"},
	"policy.TDX":       {reflect.TypeOf(TDX{}), "tdx"},
	"policy.TCB":       {reflect.TypeOf(TCB{}), "tdx.tcb"},
	"policy.SEVSNP":    {reflect.TypeOf(SEVSNP{}), "sevSnp"},
	"policy.SNPTCB":    {reflect.TypeOf(SNPTCB{}), "sevSnp.minTcb"},
	"policy.Runtime":   {reflect.TypeOf(Runtime{}), "runtime"},
	"policy.Freshness": {reflect.TypeOf(Freshness{}), "freshness"},
	"policy.Masked":    {reflect.TypeOf(Masked{}), "a masked value"},
}

func sectionName(typ string) string { return sectionTypes[strings.TrimPrefix(typ, "*")].name }

func knownKeys(typ string) []string {
	st, ok := sectionTypes[strings.TrimPrefix(typ, "*")]
	if !ok {
		return nil
	}
	var keys []string
	for i := 0; i < st.t.NumField(); i++ {
		tag := strings.Split(st.t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag != "" && tag != "-" {
			keys = append(keys, tag)
		}
	}
	return keys
}

// closest returns the known key nearest to s (case-insensitive edit distance ≤ 3), or "".
func closest(s string, keys []string) string {
	best, bestD := "", 4
	for _, k := range keys {
		if d := editDistance(strings.ToLower(s), strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// collectLines records the line of every mapping key by dotted path; sequence items get
// "path[i]".
func collectLines(n *yaml.Node, prefix string, out map[string]int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			path := k.Value
			if prefix != "" {
				path = prefix + "." + k.Value
			}
			out[path] = k.Line
			collectLines(v, path, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			path := fmt.Sprintf("%s[%d]", prefix, i)
			out[path] = c.Line
			collectLines(c, path, out)
		}
	}
}

func nodeErr(n *yaml.Node, msg, hint string) error {
	s := fmt.Sprintf("line %d: %s", n.Line, msg)
	if hint != "" {
		s += hintSep + hint
	}
	return &yaml.TypeError{Errors: []string{s}}
}

// UnmarshalYAML reads a hex string (either case, optional "sha256:" prefix not allowed here).
func (h *HexBytes) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return nodeErr(n, "expected a hex string", "write bytes as hex, e.g. \"00ff\"")
	}
	b, err := decodeHex(n.Value)
	if err != nil {
		return nodeErr(n, err.Error(), "write bytes as an even number of hex digits, without 0x")
	}
	*h = b
	return nil
}

// UnmarshalJSON is not needed: JSON policies go through the YAML parser too.

func decodeHex(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty hex value")
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		var ie hex.InvalidByteError
		switch {
		case errors.As(err, &ie):
			return nil, fmt.Errorf("bad hex %q: invalid character %q", abbrev(s), rune(ie))
		case errors.Is(err, hex.ErrLength):
			return nil, fmt.Errorf("bad hex %q: odd number of digits (%d)", abbrev(s), len(s))
		}
		return nil, fmt.Errorf("bad hex %q: %v", abbrev(s), err)
	}
	return b, nil
}

func abbrev(s string) string {
	if len(s) > 24 {
		return s[:10] + "…" + s[len(s)-10:]
	}
	return s
}

// UnmarshalYAML accepts a plain hex string or {value, name}.
func (m *Measurement) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		return m.Value.UnmarshalYAML(n)
	case yaml.MappingNode:
		*m = Measurement{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			switch k.Value {
			case "value":
				if err := m.Value.UnmarshalYAML(v); err != nil {
					return err
				}
			case "name":
				if v.Kind != yaml.ScalarNode {
					return nodeErr(v, "name must be a string", "")
				}
				m.Name = v.Value
			default:
				return nodeErr(k, fmt.Sprintf("unknown key %q in a measurement", k.Value), "known keys: value, name")
			}
		}
		if m.Value == nil {
			return nodeErr(n, "measurement has no value", "add `value: HEX`")
		}
		return nil
	}
	return nodeErr(n, "expected a hex string or {value, name}", "")
}

// UnmarshalYAML accepts {name, digest}, or a string "NAME@HEX" / "NAME@sha256:HEX" / "HEX".
func (d *Digest) UnmarshalYAML(n *yaml.Node) error {
	*d = Digest{}
	parseDigest := func(v *yaml.Node, s string) error {
		s = strings.TrimPrefix(strings.TrimSpace(s), "sha256:")
		b, err := decodeHex(s)
		if err != nil {
			return nodeErr(v, err.Error(), "a digest is 64 hex digits (SHA-256), optionally prefixed by sha256:")
		}
		d.Digest = b
		return nil
	}
	switch n.Kind {
	case yaml.ScalarNode:
		s := n.Value
		if i := strings.LastIndex(s, "@"); i >= 0 {
			d.Name = strings.TrimSpace(s[:i])
			s = s[i+1:]
		}
		return parseDigest(n, s)
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind != yaml.ScalarNode {
				return nodeErr(v, k.Value+" must be a string", "")
			}
			switch k.Value {
			case "name":
				d.Name = v.Value
			case "digest":
				if err := parseDigest(v, v.Value); err != nil {
					return err
				}
			default:
				return nodeErr(k, fmt.Sprintf("unknown key %q in a digest entry", k.Value), "known keys: name, digest")
			}
		}
		if d.Digest == nil {
			return nodeErr(n, "digest entry has no digest", "add `digest: HEX`")
		}
		return nil
	}
	return nodeErr(n, "expected {name, digest} or \"NAME@sha256:HEX\"", "")
}

// UnmarshalYAML reads Go duration text, plus "Nd" for days.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return nodeErr(n, "expected a duration", "e.g. \"720h\", \"30d\" or \"10m\"")
	}
	s := strings.TrimSpace(n.Value)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if v, err := strconv.Atoi(days); err == nil && v >= 0 && v < 100000 {
			*d = Duration(time.Duration(v) * 24 * time.Hour)
			return nil
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return nodeErr(n, fmt.Sprintf("bad duration %q", abbrev(s)), "e.g. \"720h\", \"30d\" or \"10m\"")
	}
	*d = Duration(v)
	return nil
}
