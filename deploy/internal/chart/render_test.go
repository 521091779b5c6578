package chart

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Decode is strict: what the API server would silently drop or refuse fails here.
func TestDecodeStrict(t *testing.T) {
	ok := "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 5000}]}\n"
	objs, err := Decode([]Doc{{Source: "ok.yaml", YAML: ok}})
	require.NoError(t, err)
	assert.Equal(t, int32(5000), objs.Service.Spec.Ports[0].Port)

	cases := map[string]struct {
		docs []Doc
		want string
	}{
		"unknown field": {[]Doc{{"s.yaml", "apiVersion: v1\nkind: Service\nspec: {prots: []}\n"}}, `unknown field "prots"`},
		"wrong type":    {[]Doc{{"s.yaml", "apiVersion: v1\nkind: Service\nspec: {ports: [{port: \"5000\"}]}\n"}}, "strict decoding"},
		"duplicate key": {[]Doc{{"s.yaml", "apiVersion: v1\nkind: Service\nspec: {type: ClusterIP, type: NodePort}\n"}}, "s.yaml"},
		"twice":         {[]Doc{{"a.yaml", ok}, {"b.yaml", ok}}, "rendered twice"},
		"wrong version": {[]Doc{{"h.yaml", "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\n"}}, "unexpected kind"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Decode(tc.docs)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	_, err = Decode([]Doc{{"c.yaml", "apiVersion: v1\nkind: ConfigMap\n"}})
	assert.True(t, errors.Is(err, ErrUnknownKind))
}

func TestFormat(t *testing.T) {
	assert.Equal(t, "---\n# Source: x\na: 1\n---\n# Source: y\nb: 2\n",
		string(Format([]Doc{{Source: "x", YAML: "a: 1"}, {Source: "y", YAML: "b: 2"}})))
}
