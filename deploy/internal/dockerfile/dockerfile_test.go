package dockerfile

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tdxl/tdxl/deploy/internal/chart"
)

// namedContexts are the build contexts the Dockerfile documents (docker build --build-context NAME=DIR).
var namedContexts = []string{"model"}

func repo(t *testing.T) (string, *File) {
	t.Helper()
	root, err := chart.RepoRoot(".")
	require.NoError(t, err)
	f, err := ParseFile(filepath.Join(root, "Dockerfile"))
	require.NoError(t, err)
	return root, f
}

func TestDockerfileStages(t *testing.T) {
	_, f := repo(t)
	var names []string
	for _, s := range f.Stages {
		names = append(names, s.Name)
	}
	assert.Equal(t, []string{"build", "runtime", "full", "lite"}, names)
	assert.Equal(t, "lite", f.Stages[len(f.Stages)-1].Name, "the default target builds without a model context")
	assert.Equal(t, "runtime", f.Stage("full").Base)
	assert.Equal(t, "runtime", f.Stage("lite").Base)
	assert.Regexp(t, `^(gcr\.io/distroless/cc-debian12|debian:bookworm-slim)([:@].*)?$`, f.Stage("runtime").Base)
	// The runtime's glibc must not be older than the build stage's: both Debian 12 (bookworm).
	assert.Contains(t, f.Stage("build").Base, "bookworm")
	assert.Regexp(t, `^golang:1\.26`, f.Stage("build").Base)
}

// Every COPY source is in the repository and in the build context (.dockerignore), every --from is an
// earlier stage or a documented named context, and nothing is downloaded unchecked.
func TestDockerfileCopySources(t *testing.T) {
	root, f := repo(t)
	b, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	require.NoError(t, err)
	ig, err := ParseIgnore(string(b))
	require.NoError(t, err)
	copies := 0
	for i, st := range f.Stages {
		for _, in := range st.Instrs {
			if in.Cmd == "ADD" {
				t.Errorf("line %d: ADD (use COPY; no unchecked downloads)", in.Line)
			}
			if in.Cmd != "COPY" {
				continue
			}
			copies++
			require.GreaterOrEqual(t, len(in.Args), 2, "line %d: COPY needs SRC... DEST", in.Line)
			srcs := in.Args[:len(in.Args)-1]
			if from, ok := in.Flags["from"]; ok {
				earlier := slices.ContainsFunc(f.Stages[:i], func(s Stage) bool { return s.Name == from })
				assert.True(t, earlier || slices.Contains(namedContexts, from),
					"line %d: --from=%s is neither an earlier stage nor a named context %v", in.Line, from, namedContexts)
				continue
			}
			for _, src := range srcs {
				matches, err := filepath.Glob(filepath.Join(root, src))
				require.NoError(t, err)
				assert.NotEmpty(t, matches, "line %d: COPY source %s does not exist in the repository", in.Line, src)
				if src != "." {
					assert.False(t, ig.Excluded(src), "line %d: COPY source %s is excluded by .dockerignore", in.Line, src)
				}
			}
		}
	}
	assert.Greater(t, copies, 3)
}

func TestDockerignore(t *testing.T) {
	root, _ := repo(t)
	b, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	require.NoError(t, err)
	ig, err := ParseIgnore(string(b))
	require.NoError(t, err)
	for _, p := range []string{".git/config", "bin/tdxl-backend", "deploy/go.mod", "kernels/testdata/x.safetensors",
		"models/stabilityai/sdxl-turbo/unet/diffusion_pytorch_model.safetensors"} {
		assert.True(t, ig.Excluded(p), "%s must stay out of the build context", p)
	}
	// What `make build` needs stays in.
	for _, p := range []string{"go.mod", "go.sum", "Makefile", "mk/deploy.mk", "cmd/tdxl-backend/main.go",
		"kernels/cgo.go", "kernels/core.h", "backend/api.go", "gateway", "attest"} {
		assert.False(t, ig.Excluded(p), "%s is needed by make build", p)
	}
	_, err = ParseIgnore("!keep\n")
	assert.Error(t, err)
}

// The image is built by the Makefile target `make test` builds with, for the portable baseline.
func TestDockerfileBuildsWithMakefileTarget(t *testing.T) {
	root, f := repo(t)
	var makeRuns []string
	for _, in := range f.Stage("build").Instrs {
		if in.Cmd == "RUN" && strings.HasPrefix(in.Rest, "make") {
			makeRuns = append(makeRuns, in.Rest)
		}
		if in.Cmd == "ENV" || in.Cmd == "ARG" {
			assert.NotRegexp(t, `CGO_C(XX)?FLAGS|GOAMD64|GOFLAGS`, in.Rest,
				"line %d: the build stage must not change the Makefile's compiler flags", in.Line)
		}
	}
	assert.Equal(t, []string{"make build"}, makeRuns)

	targets := makeTargets(t, root)
	require.Contains(t, targets, "build", "Makefile target build")
	assert.Contains(t, targets["test"], "build", "`make test` must build with the same target")

	// No -march=native anywhere the image's compile flags can come from.
	files := []string{"Dockerfile", "Makefile"}
	mk, err := filepath.Glob(filepath.Join(root, "mk", "*.mk"))
	require.NoError(t, err)
	for _, m := range mk {
		rel, _ := filepath.Rel(root, m)
		files = append(files, rel)
	}
	cgo := regexp.MustCompile(`(?m)^#cgo .*`)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "deploy" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, line := range cgo.FindAllString(string(b), -1) {
				assert.NotContains(t, line, "-march=native", p)
				assert.NotContains(t, line, "-mtune=native", p)
			}
		}
		return nil
	})
	require.NoError(t, err)
	for _, rel := range files {
		b, err := os.ReadFile(filepath.Join(root, rel))
		require.NoError(t, err)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			assert.NotContains(t, line, "-march=native", rel)
		}
	}
}

// makeTargets reads "target: prerequisites" lines of the Makefile and mk/*.mk.
func makeTargets(t *testing.T, root string) map[string][]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "mk", "*.mk"))
	require.NoError(t, err)
	files = append([]string{filepath.Join(root, "Makefile")}, files...)
	rule := regexp.MustCompile(`^([A-Za-z0-9_.-]+)\s*:([^=].*)?$`)
	out := map[string][]string{}
	for _, p := range files {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		for _, line := range strings.Split(string(b), "\n") {
			if m := rule.FindStringSubmatch(line); m != nil {
				out[m[1]] = append(out[m[1]], strings.Fields(m[2])...)
			}
		}
	}
	return out
}

// The images run as uid 1000, hold the server binaries only, and agree with the chart on paths.
func TestDockerfileRuntime(t *testing.T) {
	root, f := repo(t)
	for _, target := range []string{"full", "lite"} {
		chain := f.Chain(target)
		require.Len(t, chain, 2, "%s derives from runtime", target)
		user := ""
		for i := len(chain) - 1; i >= 0; i-- {
			for _, in := range chain[i].Instrs {
				if in.Cmd == "USER" {
					user = in.Rest
				}
				assert.NotEqual(t, "RUN", in.Cmd, "line %d: no RUN in the runtime image (no shell, no compilers)", in.Line)
			}
		}
		assert.Regexp(t, `^1000(:1000)?$`, user, "%s runs as uid 1000", target)
	}

	rt := f.Stage("runtime")
	var bins []string
	entry := ""
	for _, in := range rt.Instrs {
		switch in.Cmd {
		case "COPY":
			assert.Equal(t, "build", in.Flags["from"], "line %d: the runtime copies only from the build stage", in.Line)
			assert.Equal(t, "/usr/local/bin/", in.Args[len(in.Args)-1])
			for _, src := range in.Args[:len(in.Args)-1] {
				require.True(t, strings.HasPrefix(src, "/src/bin/"), "line %d: %s is not a built binary", in.Line, src)
				name := strings.TrimPrefix(src, "/src/bin/")
				bins = append(bins, name)
				// `go build -o bin/ ./cmd/...` names each binary after its cmd folder.
				_, err := os.Stat(filepath.Join(root, "cmd", name, "main.go"))
				assert.NoError(t, err, "binary %s has no cmd/%s", name, name)
			}
		case "ENTRYPOINT":
			require.Len(t, in.Args, 1)
			entry = in.Args[0]
		}
	}
	assert.ElementsMatch(t, []string{"tdxl-backend", "tdxl-gateway"}, bins, "the server binaries only")
	assert.Equal(t, "/usr/local/bin/tdxl-backend", entry)

	// The chart runs these paths.
	docs, err := chart.RenderFiles(filepath.Join(root, "deploy", "helm", "tdxl"), filepath.Join(root, "deploy", "examples", "tdx-values.yaml"))
	require.NoError(t, err)
	objs, err := chart.Decode(docs)
	require.NoError(t, err)
	var modelArgs []string
	for _, c := range objs.Deployment.Spec.Template.Spec.Containers {
		if c.Name == "gateway" {
			assert.Equal(t, []string{"/usr/local/bin/tdxl-gateway"}, c.Command)
		}
		for _, a := range c.Args {
			if v, ok := strings.CutPrefix(a, "--model-dir="); ok {
				modelArgs = append(modelArgs, v)
			}
		}
	}
	require.Len(t, modelArgs, 2)
	full := f.Stage("full")
	var modelDest, modelEnv string
	for _, in := range full.Instrs {
		switch {
		case in.Cmd == "COPY" && in.Flags["from"] == "model":
			modelDest = strings.TrimSuffix(in.Args[len(in.Args)-1], "/")
		case in.Cmd == "ENV" && strings.HasPrefix(in.Rest, "TDXL_MODEL_DIR="):
			modelEnv = strings.TrimPrefix(in.Rest, "TDXL_MODEL_DIR=")
		}
	}
	for _, m := range modelArgs {
		assert.Equal(t, modelDest, m, "the chart's baked model path is where the full image puts the model")
	}
	assert.Equal(t, modelDest, modelEnv)
}

func TestParseErrors(t *testing.T) {
	for name, text := range map[string]string{
		"no FROM":           "RUN true\n",
		"bad FROM":          "FROM a b\n",
		"open continuation": "FROM a\nRUN true \\\n",
		"bad JSON":          "FROM a\nENTRYPOINT [\"x\n",
	} {
		_, err := Parse(strings.NewReader(text))
		assert.Error(t, err, name)
	}
	f, err := Parse(strings.NewReader("ARG B=img:1\n# c\nFROM ${B} AS One\nCOPY --from=x --chown=1:1 a \\\n  b /d/\n"))
	require.NoError(t, err)
	require.Len(t, f.Stages, 1)
	assert.Equal(t, "img:1", f.Stages[0].Base)
	assert.Equal(t, "one", f.Stages[0].Name)
	in := f.Stages[0].Instrs[0]
	assert.Equal(t, map[string]string{"from": "x", "chown": "1:1"}, in.Flags)
	assert.Equal(t, []string{"a", "b", "/d/"}, in.Args)
	assert.Equal(t, 4, in.Line)
}
