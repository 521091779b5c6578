package ci

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/tdxl/tdxl/deploy/internal/chart"
)

// workflow is the part of the GitHub Actions syntax the example uses; decoding is strict, so a
// misspelt key fails.
type workflow struct {
	Name        string            `json:"name"`
	On          map[string]any    `json:"true"` // YAML 1.1 reads the key `on` as true; GitHub reads "on"
	Permissions map[string]string `json:"permissions"`
	Jobs        map[string]struct {
		RunsOn         string `json:"runs-on"`
		TimeoutMinutes int    `json:"timeout-minutes"`
		Steps          []step `json:"steps"`
	} `json:"jobs"`
}

type step struct {
	Name string            `json:"name"`
	Uses string            `json:"uses"`
	With map[string]string `json:"with"`
	Env  map[string]string `json:"env"`
	Run  string            `json:"run"`
}

// The workflow's shell steps run as written, from the repository root: the client builds with
// CGO_ENABLED=0 and every example policy in deploy/policies lints (the tdx-* ones with --strict).
func TestPolicyLintWorkflow(t *testing.T) {
	root, err := chart.RepoRoot(".")
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(root, "deploy", "ci", "policy-lint.yml"))
	require.NoError(t, err)
	var wf workflow
	require.NoError(t, yaml.UnmarshalStrict(b, &wf))
	require.Contains(t, wf.Jobs, "lint")
	assert.Contains(t, wf.On, "pull_request")
	assert.Equal(t, "read", wf.Permissions["contents"], "least privilege")
	steps := wf.Jobs["lint"].Steps

	policies, err := filepath.Glob(filepath.Join(root, "deploy", "policies", "*.yaml"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(policies), 4, "deploy/policies holds the example policies")

	runnerTemp := t.TempDir()
	var built, linted bool
	for _, s := range steps {
		if s.Run == "" {
			assert.NotEmpty(t, s.Uses, "step %q does nothing", s.Name)
			continue
		}
		if strings.Contains(s.Run, "go build") {
			assert.Equal(t, "0", s.Env["CGO_ENABLED"], "the client is built without cgo")
			assert.Contains(t, s.Run, "./cmd/tdxl")
			built = true
		}
		if strings.Contains(s.Run, "policy lint") {
			require.True(t, built, "policies are linted by the client built in an earlier step")
			linted = true
		}
		out, err := runStep(root, runnerTemp, s)
		require.NoError(t, err, "step %q failed:\n%s", s.Name, out)
		if strings.Contains(s.Run, "policy lint deploy/policies/*.yaml") {
			for _, p := range policies {
				assert.Contains(t, out, "deploy/policies/"+filepath.Base(p)+": ok")
			}
		}
	}
	require.True(t, built && linted, "the workflow builds the client and lints policies")

	// The same binary refuses a broken policy with file:line and a non-zero exit, so the job fails.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("apiVersion: tdxl/v1\nname: bad\ntdx:\n  mrtdd: []\n"), 0o644))
	out, err := exec.Command(filepath.Join(runnerTemp, "tdxl"), "policy", "lint", bad).CombinedOutput()
	require.Error(t, err, "lint accepted a policy with an unknown key:\n%s", out)
	assert.Contains(t, string(out), bad+":4")
}

func runStep(root, runnerTemp string, s step) (string, error) {
	cmd := exec.Command("bash", "-e", "-o", "pipefail", "-c", s.Run)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "RUNNER_TEMP="+runnerTemp)
	for k, v := range s.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}
