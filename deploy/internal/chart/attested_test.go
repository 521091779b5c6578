package chart

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

const (
	// configfs-tsm's /sys/kernel/config/tsm/report lies below this mount point; the mount point itself is
	// the only path that exists in the container's read-only sysfs.
	configfsPath  = "/sys/kernel/config"
	rtmrSysfsPath = "/sys/devices/virtual/misc/tdx_guest/measurements"
)

// assertAttested checks the attested layout: the Service exposes only the gateway's TLS port, the
// backend listens on 127.0.0.1 and declares no port, probes go through the gateway over HTTPS.
func assertAttested(t *testing.T, objs *Objects, tee string) (be, gw corev1.Container) {
	t.Helper()
	pod := objs.Deployment.Spec.Template.Spec
	require.Len(t, pod.Containers, 2)
	be = container(t, pod, "backend")
	gw = container(t, pod, "gateway")

	require.Len(t, objs.Service.Spec.Ports, 1)
	sp := objs.Service.Spec.Ports[0]
	assert.Equal(t, int32(8443), sp.Port)
	assert.Equal(t, intstr.FromString("https"), sp.TargetPort)
	for _, p := range objs.Service.Spec.Ports {
		assert.NotEqual(t, int32(5000), p.Port, "the backend's port must not be exposed")
		assert.NotEqual(t, intstr.FromString("http"), p.TargetPort)
		assert.NotEqual(t, intstr.FromInt32(5000), p.TargetPort)
	}
	assert.True(t, hasArg(be, "--listen=127.0.0.1:5000"), "backend args %v", be.Args)
	assert.Empty(t, be.Ports, "the backend declares no container port in attested mode")
	assert.Nil(t, be.ReadinessProbe)

	assert.Equal(t, []string{"/usr/local/bin/tdxl-gateway"}, gw.Command)
	assert.Equal(t, be.Image, gw.Image)
	for _, a := range []string{"--listen=:8443", "--backend=http://127.0.0.1:5000", "--tee=" + tee, "--shutdown-grace=90s"} {
		assert.True(t, hasArg(gw, a), "gateway args %v lack %s", gw.Args, a)
	}
	require.Len(t, gw.Ports, 1)
	assert.Equal(t, int32(8443), gw.Ports[0].ContainerPort)
	assert.Equal(t, "https", gw.Ports[0].Name)
	for name, pr := range map[string]*corev1.Probe{"startup": gw.StartupProbe, "readiness": gw.ReadinessProbe, "liveness": gw.LivenessProbe} {
		require.NotNil(t, pr, name)
		assert.Equal(t, corev1.URISchemeHTTPS, pr.HTTPGet.Scheme, name)
		assert.Equal(t, intstr.FromString("https"), pr.HTTPGet.Port, name)
	}
	assert.Equal(t, "/readyz", gw.StartupProbe.HTTPGet.Path)
	assert.Equal(t, "/readyz", gw.ReadinessProbe.HTTPGet.Path)
	assert.Equal(t, "/healthz", gw.LivenessProbe.HTTPGet.Path)
	tmp := volume(pod, "gateway-tmp")
	require.NotNil(t, tmp)
	assert.Equal(t, corev1.StorageMediumMemory, tmp.EmptyDir.Medium)
	for _, c := range pod.Containers {
		sc := c.SecurityContext
		require.NotNil(t, sc, c.Name)
		assert.Nil(t, sc.Privileged, "%s must not be privileged", c.Name)
		assert.False(t, *sc.AllowPrivilegeEscalation, c.Name)
		assert.True(t, *sc.ReadOnlyRootFilesystem, c.Name)
		assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, c.Name)
		assert.Empty(t, sc.Capabilities.Add, c.Name)
	}
	assert.Equal(t, int64(1000), *be.SecurityContext.RunAsUser, "the backend never runs as root")
	return be, gw
}

func hostPaths(pod corev1.PodSpec) map[string]string {
	out := map[string]string{}
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			out[v.Name] = v.HostPath.Path
		}
	}
	return out
}

// The TDX example: the seed's node pool, attestation on, configfs-tsm quote access and RTMR3 extension
// without privileged mode.
func TestRenderTDXExample(t *testing.T) {
	ch, p := loadChart(t)
	objs, _ := render(t, ch, []string{filepath.Join(p.examples, "tdx-values.yaml")}, "")
	_, gw := assertAttested(t, objs, "tdx")
	pod := objs.Deployment.Spec.Template.Spec
	assert.Equal(t, map[string]string{"nodepool-label": "tdx-vm-pool"}, pod.NodeSelector)
	assert.Equal(t, map[string]string{"configfs": configfsPath, "tdx-measurements": rtmrSysfsPath}, hostPaths(pod))
	for name, path := range map[string]string{"configfs": configfsPath, "tdx-measurements": rtmrSysfsPath} {
		m := mount(gw, name)
		require.NotNil(t, m, name)
		assert.Equal(t, path, m.MountPath)
		assert.False(t, m.ReadOnly, "%s must be writable to request quotes / extend RTMR3", name)
		assert.Equal(t, corev1.HostPathDirectory, *volume(pod, name).HostPath.Type)
	}
	// configfs-tsm entries are root-owned: uid 0 without any capability, the backend stays 1000.
	assert.Equal(t, int64(0), *gw.SecurityContext.RunAsUser)
	assert.False(t, *gw.SecurityContext.RunAsNonRoot)
	// The runtimes' default AppArmor profile denies writes below /sys: Unconfined for the gateway only.
	require.NotNil(t, gw.SecurityContext.AppArmorProfile)
	assert.Equal(t, corev1.AppArmorProfileTypeUnconfined, gw.SecurityContext.AppArmorProfile.Type)
	assert.Nil(t, container(t, pod, "backend").SecurityContext.AppArmorProfile)
	assert.True(t, hasArg(gw, "--tls=self-signed"), "gateway args %v", gw.Args)
	assert.True(t, hasArg(gw, "--model-dir=/opt/tdxl/models/stabilityai/sdxl-turbo"), "gateway args %v", gw.Args)
	assert.Contains(t, objs.Notes, "tdxl verify https://127.0.0.1:8443 --policy")

	// The example mirrors the seed's tdx_values.yaml: every seed key keeps its value.
	seed := readYAML(t, filepath.Join(p.seed, "tdx_values.yaml"))
	example := readYAML(t, filepath.Join(p.examples, "tdx-values.yaml"))
	for k, v := range seed {
		assert.Equal(t, v, example[k], "tdx-values.yaml must keep the seed's %s", k)
	}
}

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, yaml.Unmarshal(b, &m))
	return m
}

// Unattested or simulated evidence needs no host access and keeps uid 1000 everywhere.
func TestRenderAttestedWithoutQuoteAccess(t *testing.T) {
	ch, p := loadChart(t)
	for _, tee := range []string{"none", "simulated"} {
		t.Run(tee, func(t *testing.T) {
			objs, _ := render(t, ch, []string{filepath.Join(p.seed, "values.yaml")},
				"attestation: {enabled: true, tee: "+tee+"}")
			_, gw := assertAttested(t, objs, tee)
			assert.Empty(t, hostPaths(objs.Deployment.Spec.Template.Spec))
			assert.Equal(t, int64(1000), *gw.SecurityContext.RunAsUser)
			assert.True(t, *gw.SecurityContext.RunAsNonRoot)
		})
	}
	objs, _ := render(t, ch, []string{filepath.Join(p.examples, "unattested-gateway-values.yaml")}, "")
	assertAttested(t, objs, "none")
	assert.Contains(t, objs.Notes, "WARNING: attestation.tee=none")
}

// auto and sev-snp reach configfs-tsm but not the TDX-only RTMR sysfs (absent on SEV-SNP nodes, where a
// Directory hostPath would keep the pod from starting).
func TestRenderAttestedAutoAndSNP(t *testing.T) {
	ch, _ := loadChart(t)
	for _, tee := range []string{"auto", "sev-snp"} {
		t.Run(tee, func(t *testing.T) {
			objs, _ := render(t, ch, nil, "attestation: {enabled: true, tee: "+tee+"}")
			_, gw := assertAttested(t, objs, tee)
			assert.Equal(t, map[string]string{"configfs": configfsPath}, hostPaths(objs.Deployment.Spec.Template.Spec))
			assert.Equal(t, int64(0), *gw.SecurityContext.RunAsUser)
		})
	}
}

// /dev/tdx_guest through a device plugin: an extended resource instead of the hostPath, and no root.
func TestRenderAttestedDevicePlugin(t *testing.T) {
	ch, _ := loadChart(t)
	objs, _ := render(t, ch, nil, `
attestation: {enabled: true, tee: tdx, extendRTMR: false, quoteAccess: devicePlugin, devicePluginResource: squat.ai/tdx-guest}`)
	_, gw := assertAttested(t, objs, "tdx")
	assert.Empty(t, hostPaths(objs.Deployment.Spec.Template.Spec))
	q := gw.Resources.Limits[corev1.ResourceName("squat.ai/tdx-guest")]
	assert.Equal(t, int64(1), q.Value())
	assert.True(t, gw.Resources.Limits.Memory().Cmp(*gw.Resources.Requests.Memory()) >= 0)
	assert.Equal(t, int64(1000), *gw.SecurityContext.RunAsUser)
}

// TLS modes map to the gateway's flags and volumes; custom models are mounted read-only into both
// containers (the gateway measures what the backend serves).
func TestRenderAttestedTLSModes(t *testing.T) {
	ch, p := loadChart(t)
	custom := filepath.Join(p.seed, "custom-model-values.yaml")
	objs, _ := render(t, ch, []string{custom}, `
runtimeClassName: kata-qemu-tdx
attestation:
  enabled: true
  tee: tdx
  pccsURL: https://pccs.example/sgx/certification/v4/
  tls: {mode: acme, acme: {email: ops@example.com, domains: [a.example.com, b.example.com], caURL: https://acme.example/dir}}`)
	be, gw := assertAttested(t, objs, "tdx")
	pod := objs.Deployment.Spec.Template.Spec
	assert.Equal(t, "kata-qemu-tdx", *pod.RuntimeClassName)
	for _, a := range []string{"--tls=acme", "--acme-email=ops@example.com", "--acme-domains=a.example.com,b.example.com",
		"--acme-ca=https://acme.example/dir"} {
		assert.True(t, hasArg(gw, a), "gateway args %v lack %s", gw.Args, a)
	}
	assert.Contains(t, objs.Notes, "--policy policy.yaml --pccs https://pccs.example/sgx/certification/v4/")
	for _, c := range []corev1.Container{be, gw} {
		m := mount(c, "data-volume")
		require.NotNil(t, m, c.Name)
		assert.True(t, m.ReadOnly, c.Name)
		assert.True(t, hasArg(c, "--model-dir=/models/stabilityai/sdxl-turbo"), "%s args %v", c.Name, c.Args)
	}

	// ACME's TLS-ALPN challenge comes to 443: the Service maps it onto the gateway's unprivileged 8443.
	objs, _ = render(t, ch, nil, "service: {type: LoadBalancer}\nattestation: {enabled: true, tee: none, port: 443}")
	gw = container(t, objs.Deployment.Spec.Template.Spec, "gateway")
	assert.Equal(t, corev1.ServiceTypeLoadBalancer, objs.Service.Spec.Type)
	assert.Equal(t, int32(443), objs.Service.Spec.Ports[0].Port)
	assert.Equal(t, intstr.FromString("https"), objs.Service.Spec.Ports[0].TargetPort)
	assert.Equal(t, int32(8443), gw.Ports[0].ContainerPort)
	assert.True(t, hasArg(gw, "--listen=:8443"), "gateway args %v", gw.Args)
	assert.Contains(t, objs.Notes, "port-forward service/tdxl 8443:443")

	objs, _ = render(t, ch, nil, "attestation: {enabled: true, tee: none, tls: {mode: existingSecret, existingSecret: tdxl-tls}}")
	_, gw = assertAttested(t, objs, "none")
	v := volume(objs.Deployment.Spec.Template.Spec, "gateway-tls")
	require.NotNil(t, v)
	assert.Equal(t, "tdxl-tls", v.Secret.SecretName)
	m := mount(gw, "gateway-tls")
	require.NotNil(t, m)
	assert.True(t, m.ReadOnly)
	assert.True(t, hasArg(gw, "--tls=files"))
	assert.True(t, hasArg(gw, "--tls-cert="+m.MountPath+"/tls.crt"))
	assert.True(t, hasArg(gw, "--tls-key="+m.MountPath+"/tls.key"))
}

// The drain budget: the preStop pause plus --grace equals terminationGracePeriodSeconds, for both binaries.
func TestRenderGraceAndPDB(t *testing.T) {
	ch, _ := loadChart(t)
	objs, _ := render(t, ch, nil, `
terminationGracePeriodSeconds: 120
preStopSleepSeconds: 10
podDisruptionBudget: {minAvailable: 2}
attestation: {enabled: true, tee: none}`)
	pod := objs.Deployment.Spec.Template.Spec
	assert.Equal(t, int64(120), *pod.TerminationGracePeriodSeconds)
	for _, c := range pod.Containers {
		require.NotNil(t, c.Lifecycle, c.Name)
		assert.Equal(t, int64(10), c.Lifecycle.PreStop.Sleep.Seconds, c.Name)
	}
	be := container(t, pod, "backend")
	assert.True(t, hasArg(be, "--grace=110s"), "backend args %v", be.Args)
	gw := container(t, pod, "gateway")
	assert.True(t, hasArg(gw, "--shutdown-grace=110s"), "gateway args %v", gw.Args)
	assert.Equal(t, intstr.FromInt32(2), *objs.PDB.Spec.MinAvailable)

	// The sleep action is Kubernetes >= 1.30: older clusters get a clear error, not a dropped field.
	_, _, err := RenderFor(ch, map[string]any{"preStopSleepSeconds": 5}, "v1.29.4")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "preStopSleepSeconds needs Kubernetes >= 1.30")
	_, _, err = RenderFor(ch, map[string]any{"preStopSleepSeconds": 5}, "v1.30.0")
	require.NoError(t, err)
	_, _, err = RenderFor(ch, nil, "v1.25.0")
	require.NoError(t, err, "without a preStop pause the chart renders for 1.25")
	assert.Nil(t, objs.PDB.Spec.MaxUnavailable, "minAvailable replaces maxUnavailable")
	assert.True(t, strings.Contains(objs.Notes, "WARNING: attestation.tee=none"), "tee=none warns in NOTES")
}

// The NetworkPolicy admits only the served port: never the backend's in attested mode.
func TestRenderNetworkPolicy(t *testing.T) {
	ch, _ := loadChart(t)
	objs, _ := render(t, ch, nil, "")
	assert.Nil(t, objs.NetPol, "off by default")
	for mode, want := range map[string]string{"false": "http", "true": "https"} {
		objs, _ := render(t, ch, nil, `
networkPolicy: {enabled: true, from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ingress}}}]}
attestation: {enabled: `+mode+`, tee: none}`)
		np := objs.NetPol
		require.NotNil(t, np)
		assert.Equal(t, objs.Deployment.Spec.Selector.MatchLabels, np.Spec.PodSelector.MatchLabels)
		require.Len(t, np.Spec.Ingress, 1)
		require.Len(t, np.Spec.Ingress[0].Ports, 1)
		assert.Equal(t, intstr.FromString(want), *np.Spec.Ingress[0].Ports[0].Port, "attestation %s", mode)
		require.Len(t, np.Spec.Ingress[0].From, 1)
		assert.Equal(t, "ingress", np.Spec.Ingress[0].From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"])
	}
}

// Before Kubernetes 1.30 the AppArmor profile is the beta annotation; a Localhost profile can replace
// Unconfined; null leaves the runtime default; without host access nothing is set.
func TestRenderGatewayAppArmor(t *testing.T) {
	ch, p := loadChart(t)
	tdx := filepath.Join(p.examples, "tdx-values.yaml")
	vals, err := ReadValuesFiles(tdx)
	require.NoError(t, err)
	docs, _, err := RenderFor(ch, vals, "v1.29.0")
	require.NoError(t, err)
	objs, err := Decode(docs)
	require.NoError(t, err)
	tpl := objs.Deployment.Spec.Template
	assert.Equal(t, "unconfined", tpl.Annotations[appArmorAnnotation+"gateway"])
	assert.Nil(t, container(t, tpl.Spec, "gateway").SecurityContext.AppArmorProfile)

	objs, _ = render(t, ch, []string{tdx}, "attestation: {hostAccessAppArmorProfile: {type: Localhost, localhostProfile: tdxl-gateway}}")
	aa := container(t, objs.Deployment.Spec.Template.Spec, "gateway").SecurityContext.AppArmorProfile
	require.NotNil(t, aa)
	assert.Equal(t, corev1.AppArmorProfileTypeLocalhost, aa.Type)
	assert.Equal(t, "tdxl-gateway", *aa.LocalhostProfile)

	for _, over := range []string{
		"attestation: {hostAccessAppArmorProfile: null}",
		"attestation: {tee: none}",
		"attestation: {extendRTMR: false, quoteAccess: devicePlugin, devicePluginResource: x.example/tdx}",
	} {
		objs, _ = render(t, ch, []string{tdx}, over)
		tpl := objs.Deployment.Spec.Template
		assert.Nil(t, container(t, tpl.Spec, "gateway").SecurityContext.AppArmorProfile, over)
		assert.Empty(t, tpl.Annotations, over)
	}
}
