// Package chart renders the tdxl Helm chart with Helm's Go SDK (no helm binary) and decodes every
// rendered object strictly into the Kubernetes API types, so that a field the API server would drop or
// reject fails the tests instead.
package chart

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// Release is the release name and namespace every render uses (as `helm template tdxl ...`).
const (
	ReleaseName = "tdxl"
	Namespace   = "default"
)

// Doc is one rendered YAML document and the template it came from.
type Doc struct {
	Source string // e.g. "tdxl/templates/deployment.yaml"
	YAML   string
}

// Objects holds the decoded objects of one render. A kind the chart does not produce is an error, so
// every rendered object is decoded.
type Objects struct {
	Deployment *appsv1.Deployment
	Service    *corev1.Service
	HPA        *autoscalingv2.HorizontalPodAutoscaler
	PDB        *policyv1.PodDisruptionBudget
	NetPol     *networkingv1.NetworkPolicy
	Notes      string
}

// Load reads the chart folder.
func Load(dir string) (*chart.Chart, error) {
	ch, err := loader.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("loading chart %s: %w", dir, err)
	}
	return ch, nil
}

// ReadValuesFiles reads and merges values files left to right, as repeated `-f` flags do.
func ReadValuesFiles(paths ...string) (map[string]any, error) {
	out := map[string]any{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("reading values: %w", err)
		}
		v, err := chartutil.ReadValues(b)
		if err != nil {
			return nil, fmt.Errorf("parsing values %s: %w", p, err)
		}
		out = chartutil.CoalesceTables(v.AsMap(), out)
	}
	return out, nil
}

// Render renders the chart as `helm template tdxl DIR -f ...` would, with user values vals (nil: the
// chart's defaults), validating them against values.schema.json when the chart has one. It returns the
// non-empty documents in Helm's install order, the NOTES.txt text apart.
func Render(ch *chart.Chart, vals map[string]any) (docs []Doc, notes string, err error) {
	return RenderFor(ch, vals, "")
}

// RenderFor is Render for a cluster of the given Kubernetes version ("v1.29.0"; "": Helm's default).
func RenderFor(ch *chart.Chart, vals map[string]any, kubeVersion string) (docs []Doc, notes string, err error) {
	if vals == nil {
		vals = map[string]any{}
	}
	caps := chartutil.DefaultCapabilities.Copy()
	if kubeVersion != "" {
		kv, err := chartutil.ParseKubeVersion(kubeVersion)
		if err != nil {
			return nil, "", fmt.Errorf("kube version: %w", err)
		}
		caps.KubeVersion = *kv
	}
	opts := chartutil.ReleaseOptions{Name: ReleaseName, Namespace: Namespace, Revision: 1, IsInstall: true}
	rv, err := chartutil.ToRenderValues(ch, vals, opts, caps)
	if err != nil {
		return nil, "", fmt.Errorf("preparing values: %w", err)
	}
	out, err := engine.Render(ch, rv)
	if err != nil {
		return nil, "", fmt.Errorf("rendering chart: %w", err)
	}
	for name, text := range out {
		if strings.HasSuffix(name, "NOTES.txt") {
			notes = text
			delete(out, name)
		}
	}
	// Split and order the documents exactly as `helm template` / `helm install` do.
	_, manifests, err := releaseutil.SortManifests(out, nil, releaseutil.InstallOrder)
	if err != nil {
		return nil, "", fmt.Errorf("sorting manifests: %w", err)
	}
	for _, m := range manifests {
		docs = append(docs, Doc{Source: m.Name, YAML: m.Content})
	}
	return docs, notes, nil
}

// Format writes docs byte for byte the way `helm template` prints them.
func Format(docs []Doc) []byte {
	var b bytes.Buffer
	for _, d := range docs {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", d.Source, d.YAML)
	}
	return b.Bytes()
}

// ErrUnknownKind is returned for a rendered object of a kind Decode does not know.
var ErrUnknownKind = errors.New("unexpected kind")

// Decode decodes every document strictly (unknown or misspelt fields, duplicate keys and type
// mismatches fail) into the API type its apiVersion/kind names. Each kind may appear once.
func Decode(docs []Doc) (*Objects, error) {
	objs := &Objects{}
	for _, d := range docs {
		var tm struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(d.YAML), &tm); err != nil {
			return nil, fmt.Errorf("%s: reading kind: %w", d.Source, err)
		}
		var target any
		switch gvk := tm.APIVersion + "/" + tm.Kind; gvk {
		case "apps/v1/Deployment":
			target = setOnce(&objs.Deployment)
		case "v1/Service":
			target = setOnce(&objs.Service)
		case "autoscaling/v2/HorizontalPodAutoscaler":
			target = setOnce(&objs.HPA)
		case "policy/v1/PodDisruptionBudget":
			target = setOnce(&objs.PDB)
		case "networking.k8s.io/v1/NetworkPolicy":
			target = setOnce(&objs.NetPol)
		default:
			return nil, fmt.Errorf("%s: %w %q", d.Source, ErrUnknownKind, gvk)
		}
		if target == nil {
			return nil, fmt.Errorf("%s: %s/%s rendered twice", d.Source, tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(d.YAML), target); err != nil {
			return nil, fmt.Errorf("%s: strict decoding into %s/%s: %w", d.Source, tm.APIVersion, tm.Kind, err)
		}
	}
	return objs, nil
}

// setOnce allocates *p and returns it, or returns nil when *p is already set.
func setOnce[T any](p **T) any {
	if *p != nil {
		return nil
	}
	*p = new(T)
	return *p
}

// RenderFiles loads the chart in chartDir and renders it with the values files, in order.
func RenderFiles(chartDir string, valuesFiles ...string) ([]Doc, error) {
	ch, err := Load(chartDir)
	if err != nil {
		return nil, err
	}
	vals, err := ReadValuesFiles(valuesFiles...)
	if err != nil {
		return nil, err
	}
	docs, _, err := Render(ch, vals)
	return docs, err
}

// RepoRoot walks up from dir to the folder holding the main module's go.mod (module
// github.com/tdxl/tdxl) and returns it.
func RepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("finding repository root: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module github.com/tdxl/tdxl\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("finding repository root: no go.mod of module github.com/tdxl/tdxl above the working directory")
		}
		dir = parent
	}
}
