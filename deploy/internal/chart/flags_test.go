package chart

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

// flagLine matches a flag in Go's flag.PrintDefaults output: "  -name type".
var flagLine = regexp.MustCompile(`(?m)^  -([a-z0-9][a-z0-9-]*)\b`)

// binaryFlags builds the project's binaries from the main module (the same packages `make build`
// builds; the Go build cache makes this cheap after it) and reads the flags each one's --help lists.
func binaryFlags(t *testing.T, root string) map[string]map[string]bool {
	t.Helper()
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/tdxl-backend", "./cmd/tdxl-gateway")
	build.Dir = root
	out, err := build.CombinedOutput()
	require.NoError(t, err, "building the binaries the chart runs:\n%s", out)
	flags := map[string]map[string]bool{}
	for _, name := range []string{"tdxl-backend", "tdxl-gateway"} {
		// --help exits non-zero with some flag packages: only the listing matters.
		help, _ := exec.Command(filepath.Join(dir, name), "--help").CombinedOutput()
		flags[name] = map[string]bool{}
		for _, m := range flagLine.FindAllStringSubmatch(string(help), -1) {
			flags[name][m[1]] = true
		}
		require.True(t, flags[name]["listen"], "%s --help lists no --listen flag:\n%s", name, help)
	}
	return flags
}

// Every flag the chart passes exists in the binary that gets it, in every mode the chart renders: a
// renamed flag would otherwise crash-loop the pod with a usage error.
func TestChartArgsMatchBinaryFlags(t *testing.T) {
	ch, p := loadChart(t)
	flags := binaryFlags(t, p.root)
	overrides := []string{
		"",
		"useCustomModels: true\npreStopSleepSeconds: 5",
		"attestation: {enabled: true, tee: tdx}",
		"attestation: {enabled: true, tee: simulated, tls: {mode: existingSecret, existingSecret: s}}",
		"attestation: {enabled: true, pccsURL: 'https://p.example', tls: {mode: acme, acme: {email: a@b.c, domains: [x.example], caURL: 'https://ca.example'}}}",
	}
	seen := map[string]bool{}
	for _, over := range overrides {
		objs, _ := render(t, ch, []string{filepath.Join(p.examples, "tdx-values.yaml")}, over)
		for _, c := range objs.Deployment.Spec.Template.Spec.Containers {
			bin := map[string]string{"backend": "tdxl-backend", "gateway": "tdxl-gateway"}[c.Name]
			require.NotEmpty(t, bin, "unexpected container %s", c.Name)
			for _, name := range argFlags(t, c) {
				seen[bin+" --"+name] = true
				assert.True(t, flags[bin][name], "chart passes --%s to %s, which has no such flag (override %q)", name, bin, over)
			}
		}
	}
	// The important ones were exercised.
	for _, f := range []string{"tdxl-backend --listen", "tdxl-backend --model-dir", "tdxl-backend --output-dir",
		"tdxl-backend --grace", "tdxl-gateway --tee", "tdxl-gateway --backend", "tdxl-gateway --tls",
		"tdxl-gateway --acme-domains", "tdxl-gateway --tls-cert", "tdxl-gateway --shutdown-grace"} {
		assert.True(t, seen[f], "no rendering passed %s", f)
	}
}

// argFlags returns the flag names in a container's args ("--name=value" or "--name").
func argFlags(t *testing.T, c corev1.Container) []string {
	t.Helper()
	var names []string
	for _, a := range c.Args {
		require.True(t, strings.HasPrefix(a, "--"), "%s: positional argument %q", c.Name, a)
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		names = append(names, name)
	}
	return names
}
