package chart

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// paths of the chart, the examples and the seed's values files (shared/ lies beside the repository:
// /work/shared here, ../shared in CI).
type paths struct{ root, chart, examples, seed string }

func testPaths(t *testing.T) paths {
	t.Helper()
	root, err := RepoRoot(".")
	require.NoError(t, err)
	p := paths{
		root:     root,
		chart:    filepath.Join(root, "deploy", "helm", "tdxl"),
		examples: filepath.Join(root, "deploy", "examples"),
		seed:     filepath.Join(root, "..", "shared", "seed"),
	}
	_, err = os.Stat(filepath.Join(p.seed, "values.yaml"))
	require.NoError(t, err, "the seed's values files must lie in ../shared/seed beside the repository")
	return p
}

func loadChart(t *testing.T) (*chart.Chart, paths) {
	t.Helper()
	p := testPaths(t)
	ch, err := Load(p.chart)
	require.NoError(t, err)
	return ch, p
}

// testKubeVersion is the cluster version the tests render for. (Helm's SDK default is v1.20.0, which
// is also what `helm template` assumes when helm was built by `go install`; the rendered examples and
// the lint tests use that default.)
const testKubeVersion = "v1.33.0"

// render renders with values files (relative to nothing: full paths) then inline YAML overrides, and
// decodes strictly.
func render(t *testing.T, ch *chart.Chart, files []string, inline string) (*Objects, []Doc) {
	t.Helper()
	vals, err := ReadValuesFiles(files...)
	require.NoError(t, err)
	if inline != "" {
		var over map[string]any
		require.NoError(t, yaml.Unmarshal([]byte(inline), &over))
		vals = coalesce(over, vals)
	}
	docs, notes, err := RenderFor(ch, vals, testKubeVersion)
	require.NoError(t, err)
	objs, err := Decode(docs)
	require.NoError(t, err)
	objs.Notes = notes
	require.NotNil(t, objs.Deployment, "no Deployment rendered")
	require.NotNil(t, objs.Service, "no Service rendered")
	return objs, docs
}

func custom(p paths) string { return filepath.Join(p.seed, "custom-model-values.yaml") }

func coalesce(over, base map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		if om, ok := v.(map[string]any); ok {
			if bm, ok := out[k].(map[string]any); ok {
				out[k] = coalesce(om, bm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func container(t *testing.T, pod corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range pod.Containers {
		if c.Name == name {
			return c
		}
	}
	require.Failf(t, "container missing", "no container %q in the pod", name)
	return corev1.Container{}
}

func volume(pod corev1.PodSpec, name string) *corev1.Volume {
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == name {
			return &pod.Volumes[i]
		}
	}
	return nil
}

func mount(c corev1.Container, name string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].Name == name {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

func hasArg(c corev1.Container, arg string) bool { return slices.Contains(c.Args, arg) }

// assertSeedBackend checks what the seed's defaults mean for the backend container.
func assertSeedBackend(t *testing.T, objs *Objects) corev1.Container {
	t.Helper()
	pod := objs.Deployment.Spec.Template.Spec
	be := container(t, pod, "backend")
	assert.True(t, be.Resources.Requests.Cpu().Equal(resource.MustParse("14")), "cpu request")
	assert.True(t, be.Resources.Limits.Cpu().Equal(resource.MustParse("16")), "cpu limit")
	assert.True(t, be.Resources.Requests.Memory().Equal(resource.MustParse("24Gi")), "memory request")
	assert.True(t, be.Resources.Limits.Memory().Equal(resource.MustParse("32Gi")), "memory limit")
	sc := be.SecurityContext
	require.NotNil(t, sc)
	assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
	assert.Equal(t, int64(1000), *sc.RunAsUser)
	assert.True(t, *sc.RunAsNonRoot)
	assert.True(t, *sc.ReadOnlyRootFilesystem, "root filesystem must be read-only")
	assert.False(t, *sc.AllowPrivilegeEscalation)
	assert.Nil(t, sc.Privileged)
	// Writable output volume at outputDirPath and a writable /tmp.
	out := mount(be, "output-volume")
	require.NotNil(t, out)
	assert.Equal(t, "/tmp/sd", out.MountPath)
	assert.False(t, out.ReadOnly)
	assert.True(t, hasArg(be, "--output-dir=/tmp/sd"), "args %v", be.Args)
	require.NotNil(t, mount(be, "tmp"))
	require.NotNil(t, volume(pod, "tmp").EmptyDir)
	assert.Equal(t, "RollingUpdate", string(objs.Deployment.Spec.Strategy.Type))
	assert.False(t, *pod.AutomountServiceAccountToken)
	// The drain: --grace equals the kubelet's budget (no preStop pause by default).
	assert.Equal(t, int64(90), *pod.TerminationGracePeriodSeconds)
	assert.True(t, hasArg(be, "--grace=90s"), "args %v", be.Args)
	return be
}

// assertPlainHTTP checks the unattested layout: the backend serves :5000 and the Service exposes it.
func assertPlainHTTP(t *testing.T, objs *Objects) {
	t.Helper()
	pod := objs.Deployment.Spec.Template.Spec
	require.Len(t, pod.Containers, 1, "no gateway without attestation")
	be := pod.Containers[0]
	assert.True(t, hasArg(be, "--listen=:5000"), "args %v", be.Args)
	require.Len(t, be.Ports, 1)
	assert.Equal(t, int32(5000), be.Ports[0].ContainerPort)
	require.Len(t, objs.Service.Spec.Ports, 1)
	sp := objs.Service.Spec.Ports[0]
	assert.Equal(t, int32(5000), sp.Port)
	assert.Equal(t, intstr.FromString("http"), sp.TargetPort)
	assert.Equal(t, corev1.ServiceTypeClusterIP, objs.Service.Spec.Type)
	assert.Equal(t, objs.Deployment.Spec.Selector.MatchLabels, objs.Service.Spec.Selector)
	// Probes: startup waits for the model (/readyz) instead of a long initial delay.
	require.NotNil(t, be.StartupProbe)
	assert.Equal(t, "/readyz", be.StartupProbe.HTTPGet.Path)
	assert.Zero(t, be.StartupProbe.InitialDelaySeconds)
	assert.GreaterOrEqual(t, be.StartupProbe.PeriodSeconds*be.StartupProbe.FailureThreshold, int32(600),
		"the startup probe must allow minutes of model loading")
	require.NotNil(t, be.ReadinessProbe)
	assert.Equal(t, "/readyz", be.ReadinessProbe.HTTPGet.Path)
	assert.Equal(t, intstr.FromString("http"), be.ReadinessProbe.HTTPGet.Port)
	require.NotNil(t, be.LivenessProbe)
	assert.Equal(t, "/healthz", be.LivenessProbe.HTTPGet.Path)
	assert.Empty(t, pod.NodeSelector)
	for _, v := range pod.Volumes {
		assert.Nil(t, v.HostPath, "an unattested pod needs no hostPath (%s)", v.Name)
	}
}

func TestRenderDefaults(t *testing.T) {
	ch, _ := loadChart(t)
	objs, _ := render(t, ch, nil, "")
	be := assertSeedBackend(t, objs)
	assertPlainHTTP(t, objs)
	assert.Equal(t, "ghcr.io/tdxl/tdxl:"+ch.Metadata.AppVersion, be.Image, "full image by default")
	assert.True(t, hasArg(be, "--model-dir=/opt/tdxl/models/stabilityai/sdxl-turbo"), "baked model: %v", be.Args)
	assert.Equal(t, int32(1), *objs.Deployment.Spec.Replicas)
	assert.Nil(t, objs.HPA)
	require.NotNil(t, objs.PDB)
	assert.Equal(t, intstr.FromInt32(1), *objs.PDB.Spec.MaxUnavailable)
	assert.Nil(t, objs.PDB.Spec.MinAvailable)
	assert.Equal(t, objs.Deployment.Spec.Selector.MatchLabels, objs.PDB.Spec.Selector.MatchLabels)
	assert.Empty(t, objs.Deployment.Spec.Template.Spec.RuntimeClassName)
	assert.Contains(t, objs.Notes, "curl -X POST http://127.0.0.1:5000/api/text2image")
	assert.Contains(t, objs.Notes, "port-forward service/tdxl 5000:5000")
	objs, _ = render(t, ch, nil, "service: {port: 80}")
	assert.Equal(t, int32(80), objs.Service.Spec.Ports[0].Port)
	assert.Equal(t, intstr.FromString("http"), objs.Service.Spec.Ports[0].TargetPort)
	assert.Contains(t, objs.Notes, "port-forward service/tdxl 5000:80")
}

// The seed's values.yaml, verbatim: its image, the full tag, every default meaning the same.
func TestRenderSeedValuesVerbatim(t *testing.T) {
	ch, p := loadChart(t)
	objs, _ := render(t, ch, []string{filepath.Join(p.seed, "values.yaml")}, "")
	be := assertSeedBackend(t, objs)
	assertPlainHTTP(t, objs)
	assert.Equal(t, "registry-vpc.cn-beijing.aliyuncs.com/eric-dev/stable-diffusion-ipex:v0.1.5", be.Image)
	assert.Equal(t, corev1.PullIfNotPresent, be.ImagePullPolicy)
	assert.Nil(t, volume(objs.Deployment.Spec.Template.Spec, "data-volume"), "models volume only with useCustomModels")
}

// The seed's custom-model values: the lite image and the PVC holding stabilityai/sdxl-turbo.
func TestRenderSeedCustomModels(t *testing.T) {
	ch, p := loadChart(t)
	objs, _ := render(t, ch, []string{filepath.Join(p.seed, "custom-model-values.yaml")}, "")
	be := assertSeedBackend(t, objs)
	assertPlainHTTP(t, objs)
	assert.Equal(t, "ghcr.io/tdxl/tdxl:"+ch.Metadata.AppVersion+"-lite", be.Image)
	pod := objs.Deployment.Spec.Template.Spec
	v := volume(pod, "data-volume")
	require.NotNil(t, v)
	require.NotNil(t, v.PersistentVolumeClaim)
	assert.Equal(t, "models-oss-pvc", v.PersistentVolumeClaim.ClaimName)
	m := mount(be, "data-volume")
	require.NotNil(t, m)
	assert.True(t, m.ReadOnly)
	assert.True(t, hasArg(be, "--model-dir="+m.MountPath+"/stabilityai/sdxl-turbo"), "args %v", be.Args)

	// A digest pins the image instead of the tag.
	digest := "sha256:" + strings.Repeat("ab", 32)
	objs, _ = render(t, ch, []string{custom(p)}, "image: {digest: \""+digest+"\"}")
	assert.Equal(t, "ghcr.io/tdxl/tdxl@"+digest, container(t, objs.Deployment.Spec.Template.Spec, "backend").Image)

	// The seed's values.yaml with useCustomModels: its tagOnlyApi.
	objs, _ = render(t, ch, []string{filepath.Join(p.seed, "values.yaml"), filepath.Join(p.seed, "custom-model-values.yaml")}, "")
	be = container(t, objs.Deployment.Spec.Template.Spec, "backend")
	assert.Equal(t, "registry-vpc.cn-beijing.aliyuncs.com/eric-dev/stable-diffusion-ipex:v0.1.5-lite", be.Image)
}

// `helm upgrade -f tdx_values.yaml`: the same service, scheduled on the TDX node pool.
func TestRenderSeedTDXValues(t *testing.T) {
	ch, p := loadChart(t)
	objs, _ := render(t, ch, []string{filepath.Join(p.seed, "values.yaml"), filepath.Join(p.seed, "tdx_values.yaml")}, "")
	assertSeedBackend(t, objs)
	pod := objs.Deployment.Spec.Template.Spec
	assert.Equal(t, map[string]string{"nodepool-label": "tdx-vm-pool"}, pod.NodeSelector)
	require.Len(t, pod.Containers, 1)
	assert.Equal(t, int32(5000), objs.Service.Spec.Ports[0].Port)
}

func TestRenderAutoscaling(t *testing.T) {
	ch, p := loadChart(t)
	objs, _ := render(t, ch, []string{filepath.Join(p.seed, "values.yaml")}, "autoscaling: {enabled: true, maxReplicas: 5}")
	assert.Nil(t, objs.Deployment.Spec.Replicas, "the HPA owns the replica count")
	require.NotNil(t, objs.HPA)
	spec := objs.HPA.Spec
	assert.Equal(t, "Deployment", spec.ScaleTargetRef.Kind)
	assert.Equal(t, "apps/v1", spec.ScaleTargetRef.APIVersion)
	assert.Equal(t, objs.Deployment.Name, spec.ScaleTargetRef.Name)
	assert.Equal(t, int32(1), *spec.MinReplicas)
	assert.Equal(t, int32(5), spec.MaxReplicas)
	require.Len(t, spec.Metrics, 2)
	targets := map[corev1.ResourceName]int32{}
	for _, m := range spec.Metrics {
		require.NotNil(t, m.Resource)
		assert.Equal(t, "Utilization", string(m.Resource.Target.Type))
		targets[m.Resource.Name] = *m.Resource.Target.AverageUtilization
	}
	assert.Equal(t, map[corev1.ResourceName]int32{corev1.ResourceCPU: 80, corev1.ResourceMemory: 90}, targets)
}

// Values the chart refuses with a readable message instead of rendering a broken pod.
func TestRenderRejectsBadValues(t *testing.T) {
	ch, _ := loadChart(t)
	cases := map[string]struct{ values, want string }{
		"two model volume sources": {
			"useCustomModels: true\nvolumes: {models: {hostPath: {path: /data/models}}}",
			"volumes.models needs exactly one volume source, found 2 (hostPath, persistentVolumeClaim)"},
		// values.schema.json: enums and the closed attestation block.
		"unknown tee":       {"attestation: {enabled: true, tee: sgx}", "at '/attestation/tee': value must be one of"},
		"unknown tls mode":  {"attestation: {enabled: true, tls: {mode: letsencrypt}}", "at '/attestation/tls/mode': value must be one of"},
		"misspelt key":      {"attestation: {enable: true}", "additional properties 'enable' not allowed"},
		"digest not sha256": {"image: {digest: latest}", "at '/image/digest'"},
		"port as string":    {"service: {port: \"5000\"}", "at '/service/port': got string, want integer"},
		// template checks: rules across keys.
		"acme without mail": {"attestation: {enabled: true, tls: {mode: acme, acme: {domains: [a.example]}}}", "needs attestation.tls.acme.email"},
		"secret unnamed":    {"attestation: {enabled: true, tls: {mode: existingSecret}}", "needs attestation.tls.existingSecret"},
		"device plugin unnamed": {"attestation: {enabled: true, tee: tdx, quoteAccess: devicePlugin}",
			"needs attestation.devicePluginResource"},
		"gateway on backend port": {"attestation: {enabled: true, port: 5000}", "must differ from the backend's port 5000"},
		"preStop beyond grace":    {"preStopSleepSeconds: 90", "below terminationGracePeriodSeconds"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var vals map[string]any
			require.NoError(t, yaml.Unmarshal([]byte(tc.values), &vals))
			_, _, err := Render(ch, vals)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	// Nulling the default source, as the error message says, works.
	objs, _ := render(t, ch, nil, "useCustomModels: true\nvolumes: {models: {persistentVolumeClaim: null, hostPath: {path: /data/models, type: Directory}}}")
	v := volume(objs.Deployment.Spec.Template.Spec, "data-volume")
	require.NotNil(t, v)
	require.NotNil(t, v.HostPath)
	assert.Nil(t, v.PersistentVolumeClaim)
}

// helm lint equivalence (pkg/lint, the code behind `helm lint`), with the defaults, the seed's files and
// the TDX example: no warning or error.
func TestLint(t *testing.T) {
	_, p := loadChart(t)
	sets := map[string][]string{
		"defaults":      nil,
		"seed values":   {filepath.Join(p.seed, "values.yaml")},
		"seed custom":   {filepath.Join(p.seed, "custom-model-values.yaml")},
		"seed tdx":      {filepath.Join(p.seed, "values.yaml"), filepath.Join(p.seed, "tdx_values.yaml")},
		"tdx example":   {filepath.Join(p.examples, "tdx-values.yaml")},
		"attested none": {filepath.Join(p.examples, "unattested-gateway-values.yaml")},
	}
	for name, files := range sets {
		t.Run(name, func(t *testing.T) {
			vals, err := ReadValuesFiles(files...)
			require.NoError(t, err)
			linter := lint.All(p.chart, vals, Namespace, false)
			for _, m := range linter.Messages {
				t.Logf("lint: %s", m)
				assert.LessOrEqual(t, m.Severity, support.InfoSev, "lint: %s", m)
			}
		})
	}
	// The linter does fail on a broken chart: a template error is an ErrorSev message.
	vals := map[string]any{"attestation": map[string]any{"tee": "sgx"}}
	linter := lint.All(p.chart, vals, Namespace, false)
	assert.Equal(t, support.ErrorSev, linter.HighestSeverity)
	var msgs []string
	for _, m := range linter.Messages {
		msgs = append(msgs, m.Error())
	}
	assert.Contains(t, strings.Join(msgs, "\n"), "at '/attestation/tee': value must be one of")
}

// The chart's defaults are the seed's: every leaf of the seed's values.yaml has the same default here,
// except the image, which is ours (the seed's image does not contain tdxl's binaries).
func TestDefaultsMatchSeed(t *testing.T) {
	ch, p := loadChart(t)
	seed, err := ReadValuesFiles(filepath.Join(p.seed, "values.yaml"))
	require.NoError(t, err)
	ours := map[string]string{
		"image.repository": "our image", "image.tag": "empty: appVersion", "image.tagOnlyApi": "empty: appVersion-lite",
	}
	leaves := 0
	var walk func(prefix string, seedVal, chartVal any)
	walk = func(prefix string, seedVal, chartVal any) {
		if m, ok := seedVal.(map[string]any); ok && len(m) > 0 {
			cm, ok := chartVal.(map[string]any)
			require.True(t, ok, "%s: the chart's default is not a map", prefix)
			for k, v := range m {
				walk(strings.TrimPrefix(prefix+"."+k, "."), v, cm[k])
			}
			return
		}
		leaves++
		if _, skip := ours[prefix]; skip {
			return
		}
		assert.Equal(t, seedVal, chartVal, "default of %s", prefix)
	}
	walk("", seed, ch.Values)
	assert.GreaterOrEqual(t, leaves, 30, "every seed key walked")
	for k := range ours {
		_, err := chartValue(ch.Values, k)
		assert.NoError(t, err, "%s exists in the chart's values", k)
	}
}

func chartValue(vals map[string]any, path string) (any, error) {
	var cur any = vals
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, os.ErrNotExist
		}
		if cur, ok = m[k]; !ok {
			return nil, os.ErrNotExist
		}
	}
	return cur, nil
}
