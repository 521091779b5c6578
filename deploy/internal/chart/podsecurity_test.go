package chart

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"
)

// restrictedViolations applies the checks of the Pod Security Standards' "restricted" profile that a
// pod template can fail (https://kubernetes.io/docs/concepts/security/pod-security-standards/).
func restrictedViolations(tpl corev1.PodTemplateSpec) []string {
	pod := tpl.Spec
	var v []string
	for k, val := range tpl.Annotations {
		if strings.HasPrefix(k, appArmorAnnotation) && val == "unconfined" {
			v = append(v, strings.TrimPrefix(k, appArmorAnnotation)+": AppArmor unconfined")
		}
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		v = append(v, "host namespaces")
	}
	for _, vol := range pod.Volumes {
		if vol.HostPath != nil {
			v = append(v, "hostPath volume "+vol.Name)
		}
	}
	podNonRoot := pod.SecurityContext != nil && pod.SecurityContext.RunAsNonRoot != nil && *pod.SecurityContext.RunAsNonRoot
	podSeccomp := pod.SecurityContext != nil && pod.SecurityContext.SeccompProfile != nil
	for _, c := range append(append([]corev1.Container{}, pod.InitContainers...), pod.Containers...) {
		sc := c.SecurityContext
		if sc == nil {
			v = append(v, c.Name+": no securityContext")
			continue
		}
		if sc.AppArmorProfile != nil && sc.AppArmorProfile.Type == corev1.AppArmorProfileTypeUnconfined {
			v = append(v, c.Name+": AppArmor unconfined")
		}
		if sc.Privileged != nil && *sc.Privileged {
			v = append(v, c.Name+": privileged")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			v = append(v, c.Name+": allowPrivilegeEscalation not false")
		}
		if !(podNonRoot || (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot)) || (sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot) {
			v = append(v, c.Name+": runAsNonRoot not true")
		}
		if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			v = append(v, c.Name+": runAsUser 0")
		}
		if sc.SeccompProfile == nil && !podSeccomp {
			v = append(v, c.Name+": no seccompProfile")
		} else if sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeUnconfined {
			v = append(v, c.Name+": seccomp Unconfined")
		}
		if sc.Capabilities == nil || !containsCap(sc.Capabilities.Drop, "ALL") {
			v = append(v, c.Name+": capabilities not dropped")
		} else {
			for _, a := range sc.Capabilities.Add {
				if a != "NET_BIND_SERVICE" {
					v = append(v, fmt.Sprintf("%s: adds capability %s", c.Name, a))
				}
			}
		}
		for _, p := range c.Ports {
			if p.HostPort != 0 {
				v = append(v, c.Name+": hostPort")
			}
		}
	}
	return v
}

const appArmorAnnotation = "container.apparmor.security.beta.kubernetes.io/"

func containsCap(caps []corev1.Capability, c corev1.Capability) bool {
	for _, x := range caps {
		if x == c {
			return true
		}
	}
	return false
}

// Unattested pods, and attested ones without host access, meet the "restricted" profile; only the
// configfs quote access needs a namespace that allows hostPath (and the gateway's uid 0), as documented.
func TestPodSecurityRestricted(t *testing.T) {
	ch, p := loadChart(t)
	restricted := map[string]struct {
		files  []string
		inline string
	}{
		"defaults":              {nil, ""},
		"seed values":           {[]string{filepath.Join(p.seed, "values.yaml")}, ""},
		"seed custom models":    {[]string{custom(p)}, ""},
		"seed tdx pool":         {[]string{filepath.Join(p.seed, "values.yaml"), filepath.Join(p.seed, "tdx_values.yaml")}, ""},
		"autoscaling":           {nil, "autoscaling: {enabled: true}"},
		"gateway, tee none":     {[]string{filepath.Join(p.examples, "unattested-gateway-values.yaml")}, ""},
		"gateway, simulated":    {nil, "attestation: {enabled: true, tee: simulated}"},
		"gateway, devicePlugin": {nil, "attestation: {enabled: true, tee: tdx, extendRTMR: false, quoteAccess: devicePlugin, devicePluginResource: x.example/tdx}"},
	}
	for name, tc := range restricted {
		t.Run(name, func(t *testing.T) {
			objs, _ := render(t, ch, tc.files, tc.inline)
			assert.Empty(t, restrictedViolations(objs.Deployment.Spec.Template))
		})
	}
	objs, _ := render(t, ch, []string{filepath.Join(p.examples, "tdx-values.yaml")}, "")
	assert.ElementsMatch(t, []string{
		"hostPath volume configfs", "hostPath volume tdx-measurements",
		"gateway: runAsNonRoot not true", "gateway: runAsUser 0", "gateway: AppArmor unconfined",
	}, restrictedViolations(objs.Deployment.Spec.Template), "exactly the documented exceptions, nothing privileged")
}
