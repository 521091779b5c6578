// Package dockerfile reads the subset of the Dockerfile syntax the project's Dockerfile uses (stages,
// ARG substitution in FROM, instruction flags, JSON and shell forms) and .dockerignore patterns, so that
// tests can check the Dockerfile without a Docker engine.
package dockerfile

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strings"
)

// Instr is one instruction, continuation lines joined.
type Instr struct {
	Line  int               // first line, 1-based
	Cmd   string            // upper case: FROM, RUN, COPY, ...
	Flags map[string]string // --name=value flags before the arguments ("" for a bare --name)
	Args  []string          // arguments: the JSON array elements, or whitespace-separated words
	Rest  string            // the text after the flags, as written (shell form of RUN)
}

// Stage is a FROM and the instructions up to the next FROM.
type Stage struct {
	Name   string // the AS name, lower case ("" when unnamed)
	Base   string // the image or stage it starts from, global ARG defaults substituted
	Instrs []Instr
}

// File is a parsed Dockerfile.
type File struct {
	Args   map[string]string // global ARGs (before the first FROM) and their defaults
	Stages []Stage
}

// Stage returns the stage named name, or nil.
func (f *File) Stage(name string) *Stage {
	for i := range f.Stages {
		if f.Stages[i].Name == name {
			return &f.Stages[i]
		}
	}
	return nil
}

// Chain returns the stage and the stages it derives from (FROM <stage>), the stage itself first.
func (f *File) Chain(name string) []*Stage {
	var chain []*Stage
	for s := f.Stage(name); s != nil && len(chain) <= len(f.Stages); s = f.Stage(strings.ToLower(s.Base)) {
		chain = append(chain, s)
	}
	return chain
}

// ParseFile parses the Dockerfile at p.
func ParseFile(p string) (*File, error) {
	fh, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("reading Dockerfile: %w", err)
	}
	defer fh.Close()
	f, err := Parse(fh)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return f, nil
}

var argRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

// Parse parses a Dockerfile.
func Parse(r io.Reader) (*File, error) {
	instrs, err := split(r)
	if err != nil {
		return nil, err
	}
	f := &File{Args: map[string]string{}}
	for _, in := range instrs {
		switch {
		case in.Cmd == "FROM":
			if len(in.Args) != 1 && !(len(in.Args) == 3 && strings.EqualFold(in.Args[1], "AS")) {
				return nil, fmt.Errorf("line %d: FROM needs IMAGE [AS NAME]", in.Line)
			}
			st := Stage{Base: argRef.ReplaceAllStringFunc(in.Args[0], func(ref string) string {
				return f.Args[argRef.FindStringSubmatch(ref)[1]]
			})}
			if len(in.Args) == 3 {
				st.Name = strings.ToLower(in.Args[2])
			}
			f.Stages = append(f.Stages, st)
		case len(f.Stages) == 0:
			if in.Cmd != "ARG" {
				return nil, fmt.Errorf("line %d: %s before the first FROM", in.Line, in.Cmd)
			}
			for _, a := range in.Args {
				name, def, _ := strings.Cut(a, "=")
				f.Args[name] = def
			}
		default:
			last := &f.Stages[len(f.Stages)-1]
			last.Instrs = append(last.Instrs, in)
		}
	}
	if len(f.Stages) == 0 {
		return nil, fmt.Errorf("no FROM")
	}
	return f, nil
}

// split joins continuation lines, drops comments and splits instructions into flags and arguments.
func split(r io.Reader) ([]Instr, error) {
	var (
		out     []Instr
		buf     strings.Builder
		start   int
		lineNum int
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		lineNum++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && buf.Len() == 0) {
			continue
		}
		if buf.Len() == 0 {
			start = lineNum
		}
		if strings.HasSuffix(trimmed, `\`) {
			buf.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		buf.WriteString(trimmed)
		in, err := instr(start, buf.String())
		if err != nil {
			return nil, err
		}
		out = append(out, in)
		buf.Reset()
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading Dockerfile: %w", err)
	}
	if buf.Len() > 0 {
		return nil, fmt.Errorf("line %d: continuation at end of file", start)
	}
	return out, nil
}

func instr(line int, text string) (Instr, error) {
	cmd, rest, _ := strings.Cut(text, " ")
	in := Instr{Line: line, Cmd: strings.ToUpper(cmd), Flags: map[string]string{}}
	rest = strings.TrimSpace(rest)
	if in.Cmd != "RUN" || strings.HasPrefix(rest, "--") {
		for strings.HasPrefix(rest, "--") {
			word, after, _ := strings.Cut(rest, " ")
			name, value, _ := strings.Cut(strings.TrimPrefix(word, "--"), "=")
			in.Flags[name] = value
			rest = strings.TrimSpace(after)
		}
	}
	in.Rest = rest
	if strings.HasPrefix(rest, "[") {
		if err := json.Unmarshal([]byte(rest), &in.Args); err != nil {
			return in, fmt.Errorf("line %d: %s: bad JSON array: %w", line, in.Cmd, err)
		}
		return in, nil
	}
	in.Args = strings.Fields(rest)
	return in, nil
}

// Ignore is a parsed .dockerignore (exclusion patterns only).
type Ignore struct{ patterns []string }

// ParseIgnore parses .dockerignore text. Exceptions ("!pattern") are refused: the checks here do not
// implement them.
func ParseIgnore(text string) (*Ignore, error) {
	ig := &Ignore{}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "!") {
			return nil, fmt.Errorf(".dockerignore line %d: exceptions (!) are not supported by these checks", i+1)
		}
		ig.patterns = append(ig.patterns, strings.Trim(path.Clean(line), "/"))
	}
	return ig, nil
}

// Excluded reports whether the context path p (slash-separated, relative) or a folder above it matches
// a pattern. "**/" matches any number of leading folders.
func (ig *Ignore) Excluded(p string) bool {
	p = strings.Trim(path.Clean(p), "/")
	parts := strings.Split(p, "/")
	for _, pat := range ig.patterns {
		for i := 1; i <= len(parts); i++ {
			prefix := strings.Join(parts[:i], "/")
			if match(pat, prefix) {
				return true
			}
		}
	}
	return false
}

func match(pat, p string) bool {
	if rest, ok := strings.CutPrefix(pat, "**/"); ok {
		parts := strings.Split(p, "/")
		for i := range parts {
			if match(rest, strings.Join(parts[i:], "/")) {
				return true
			}
		}
		return false
	}
	ok, err := path.Match(pat, p)
	return err == nil && ok
}
