package backend

import (
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// TestOpenAPIDocumentsTheAPI keeps backend/openapi.yaml in step with the
// code: it parses, names every route and every error code.
func TestOpenAPIDocumentsTheAPI(t *testing.T) {
	var doc struct {
		OpenAPI    string                    `yaml:"openapi"`
		Paths      map[string]map[string]any `yaml:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `yaml:"properties"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	require.NoError(t, yaml.Unmarshal(OpenAPI, &doc))
	assert.Equal(t, "3.0.3", doc.OpenAPI)
	for path, method := range map[string]string{
		"/api/text2image": "post", "/api/text2image/{id}": "get", "/images/{id}/{file}": "get",
		"/v1/images/generations": "post", "/healthz": "get", "/readyz": "get", "/metrics": "get",
	} {
		require.Contains(t, doc.Paths, path)
		assert.Contains(t, doc.Paths[path], method, path)
	}
	req := doc.Components.Schemas["Text2ImageRequest"].Properties
	for _, f := range []string{"prompt", "number", "size", "step", "batch", "seed", "response_format", "async"} {
		assert.Contains(t, req, f)
	}
	src, err := os.ReadFile("errors.go")
	require.NoError(t, err)
	for _, m := range regexp.MustCompile(`Code[A-Za-z]+ += "([a-z_]+)"`).FindAllSubmatch(src, -1) {
		assert.Contains(t, string(OpenAPI), string(m[1]), "error code %s is documented", m[1])
	}
}
