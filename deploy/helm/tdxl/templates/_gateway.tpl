{{/*
The attested front (attestation.enabled): tdxl-gateway terminates TLS on port 8443 (the Service's attestation.port), serves the
evidence endpoint and proxies to the backend on 127.0.0.1. It measures the model folder and the binaries
it serves, so it mounts the model volume read-only too.

Quote access without privileged mode (tee auto|tdx|sev-snp):
- configfs (default): the node's configfs, /sys/kernel/config, as a hostPath at the same path, for
  configfs-tsm's /sys/kernel/config/tsm/report (Linux >= 6.7, providers tdx_guest and sev_guest). The
  whole configfs is mounted because /sys/kernel/config is the one mount point that exists in the
  container's read-only sysfs (the runtime cannot create tsm/report there). Its entries are root-owned
  (mode 0220 attributes) and Kubernetes does not grant capabilities to non-root processes, so the
  gateway runs as uid 0 with every capability dropped; root's file ownership is all it uses. User-namespaced pods (hostUsers:
  false) cannot write there. Pod Security Admission "baseline" forbids hostPath: the namespace needs
  the "privileged" level (the pod itself is not privileged).
- devicePlugin: /dev/tdx_guest through a device plugin's extended resource (a hostPath device node is
  not enough: the device cgroup denies it to unprivileged containers). The ioctl is deprecated in the
  kernel in favour of configfs-tsm.
- tee=tdx with extendRTMR: /sys/devices/virtual/misc/tdx_guest/measurements read-write (Linux >= 6.16),
  to extend RTMR3 with the runtime measurements (the container's own /sys is read-only).
- Writes below /sys are denied by the container runtimes' default AppArmor profile
  (it denies writes to /sys except /sys/fs/cgroup), so the gateway gets attestation.hostAccessAppArmorProfile (default
  Unconfined; a Localhost profile allowing just these paths is the tighter choice) as the
  securityContext field (Kubernetes >= 1.30) or the beta annotation (older).
*/}}
{{- define "tdxl.gatewayContainer" -}}
{{- $a := .Values.attestation -}}
- name: gateway
  image: {{ include "tdxl.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command:
    - /usr/local/bin/tdxl-gateway
  args:
    - --listen=:{{ include "tdxl.gatewayPort" . }}
    - --backend=http://127.0.0.1:{{ include "tdxl.backendPort" . }}
    - --tee={{ $a.tee }}
    - --model-dir={{ include "tdxl.modelDir" . }}
    {{- if eq $a.tls.mode "selfSigned" }}
    - --tls=self-signed
    {{- else if eq $a.tls.mode "acme" }}
    - --tls=acme
    - --acme-email={{ $a.tls.acme.email }}
    - --acme-domains={{ join "," $a.tls.acme.domains }}
    {{- with $a.tls.acme.caURL }}
    - --acme-ca={{ . }}
    {{- end }}
    {{- else }}
    - --tls=files
    - --tls-cert=/etc/tdxl/tls/tls.crt
    - --tls-key=/etc/tdxl/tls/tls.key
    {{- end }}
    - --shutdown-grace={{ include "tdxl.graceSeconds" . }}s
    {{- range $a.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  env:
    - name: HOME
      value: /tmp
  ports:
    - name: https
      containerPort: {{ include "tdxl.gatewayPort" . }}
      protocol: TCP
  # The backend listens on 127.0.0.1 only, so the kubelet probes it through the gateway (HTTPS; the
  # kubelet does not check the self-signed certificate).
  startupProbe:
    httpGet:
      path: /readyz
      port: https
      scheme: HTTPS
    periodSeconds: {{ .Values.probes.startup.periodSeconds }}
    failureThreshold: {{ .Values.probes.startup.failureThreshold }}
    timeoutSeconds: {{ .Values.probes.startup.timeoutSeconds }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: https
      scheme: HTTPS
    periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
    failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
    timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: https
      scheme: HTTPS
    periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
    failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
    timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
  {{- if gt (int .Values.preStopSleepSeconds) 0 }}
  lifecycle:
    preStop:
      sleep:
        seconds: {{ int .Values.preStopSleepSeconds }}
  {{- end }}
  {{- $res := deepCopy (default dict $a.resources) }}
  {{- if and (include "tdxl.needsQuote" .) (eq $a.quoteAccess "devicePlugin") }}
  {{- $lim := default dict $res.limits }}
  {{- $_ := set $lim $a.devicePluginResource "1" }}
  {{- $_ := set $res "limits" $lim }}
  {{- end }}
  {{- with $res }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- $sc := deepCopy (default dict .Values.securityContext) }}
  {{- if include "tdxl.configfsQuote" . }}
  {{- $_ := set $sc "runAsUser" 0 }}
  {{- $_ := set $sc "runAsGroup" 0 }}
  {{- $_ := set $sc "runAsNonRoot" false }}
  {{- end }}
  {{- if and (include "tdxl.gatewayAppArmor" .) (include "tdxl.appArmorField" .) }}
  {{- $_ := set $sc "appArmorProfile" (deepCopy .Values.attestation.hostAccessAppArmorProfile) }}
  {{- end }}
  {{- with $sc }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: gateway-tmp
      mountPath: /tmp
    {{- if .Values.useCustomModels }}
    - name: {{ .Values.volumes.models.name }}
      mountPath: {{ include "tdxl.modelsMountPath" . }}
      readOnly: true
    {{- end }}
    {{- if eq $a.tls.mode "existingSecret" }}
    - name: gateway-tls
      mountPath: /etc/tdxl/tls
      readOnly: true
    {{- end }}
    {{- if include "tdxl.configfsQuote" . }}
    - name: configfs
      mountPath: /sys/kernel/config
    {{- end }}
    {{- if include "tdxl.rtmrSysfs" . }}
    - name: tdx-measurements
      mountPath: /sys/devices/virtual/misc/tdx_guest/measurements
    {{- end }}
{{- end -}}

{{- define "tdxl.gatewayVolumes" -}}
{{- $a := .Values.attestation -}}
# In memory (the TD's private memory on a TDX node): the gateway's scratch space never reaches a disk.
- name: gateway-tmp
  emptyDir:
    medium: Memory
    sizeLimit: 64Mi
{{- if eq $a.tls.mode "existingSecret" }}
- name: gateway-tls
  secret:
    secretName: {{ $a.tls.existingSecret }}
    defaultMode: 288 # 0440
{{- end }}
{{- if include "tdxl.configfsQuote" . }}
- name: configfs
  hostPath:
    path: /sys/kernel/config
    type: Directory
{{- end }}
{{- if include "tdxl.rtmrSysfs" . }}
- name: tdx-measurements
  hostPath:
    path: /sys/devices/virtual/misc/tdx_guest/measurements
    type: Directory
{{- end }}
{{- end -}}
