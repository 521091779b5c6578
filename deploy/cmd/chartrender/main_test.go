package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tdxl/tdxl/deploy/internal/chart"
)

// The rendered examples checked in under deploy/examples/rendered are exactly what `make
// deploy-examples` generates now.
func TestRenderedExamplesUpToDate(t *testing.T) {
	root, err := chart.RepoRoot(".")
	require.NoError(t, err)
	t.Chdir(root)
	examples := map[string][]string{
		"deploy/examples/rendered/default.yaml": nil,
		"deploy/examples/rendered/tdx.yaml":     {"deploy/examples/tdx-values.yaml"},
	}
	for file, values := range examples {
		want, err := Generate("deploy/helm/tdxl", values...)
		require.NoError(t, err)
		got, err := os.ReadFile(file)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(want, got), "%s is stale: run `make deploy-examples`", file)
	}
	// Every rendered example is listed above (a new file would otherwise never be checked).
	files, err := filepath.Glob("deploy/examples/rendered/*")
	require.NoError(t, err)
	for _, f := range files {
		assert.Contains(t, examples, filepath.ToSlash(f))
	}
}

func TestRunErrors(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"-chart", t.TempDir()}, &stdout, &stderr)
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout.String())
	assert.True(t, strings.HasPrefix(stderr.String(), "chartrender: loading chart"), stderr.String())
	assert.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one readable line")
}
