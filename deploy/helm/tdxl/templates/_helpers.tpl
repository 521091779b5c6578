{{/* Names and labels. */}}
{{- define "tdxl.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tdxl.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tdxl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tdxl.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tdxl.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "tdxl.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The image: full (model baked in) or lite (tagOnlyApi, expects volumes.models), as in the seed. */}}
{{- define "tdxl.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.useCustomModels -}}
{{- $tag = .Values.image.tagOnlyApi | default (printf "%s-lite" .Chart.AppVersion) -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The backend's port inside the pod (its documented default, the seed's 5000). */}}
{{- define "tdxl.backendPort" -}}5000{{- end -}}

{{/* The gateway's port inside the pod; the Service maps attestation.port (e.g. 443) onto it, so the
gateway never needs to bind a privileged port. */}}
{{- define "tdxl.gatewayPort" -}}8443{{- end -}}

{{/* Where the model folder is, inside the containers. */}}
{{- define "tdxl.modelsMountPath" -}}/models{{- end -}}
{{- define "tdxl.bakedModelDir" -}}/opt/tdxl/models/stabilityai/sdxl-turbo{{- end -}}
{{- define "tdxl.modelDir" -}}
{{- if .Values.useCustomModels -}}
{{- printf "%s/%s" (include "tdxl.modelsMountPath" .) (.Values.modelPath | trimPrefix "/" | trimSuffix "/") -}}
{{- else -}}
{{- include "tdxl.bakedModelDir" . -}}
{{- end -}}
{{- end -}}

{{/* Seconds the binaries get to drain (--grace): the kubelet's budget less the preStop pause. */}}
{{- define "tdxl.graceSeconds" -}}
{{- $t := int .Values.terminationGracePeriodSeconds -}}
{{- $p := int .Values.preStopSleepSeconds -}}
{{- if or (lt $p 0) (ge $p $t) -}}
{{- fail (printf "preStopSleepSeconds (%d) must be >= 0 and below terminationGracePeriodSeconds (%d)" $p $t) -}}
{{- end -}}
{{- if and (gt $p 0) (not (semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version)) -}}
{{- fail (printf "preStopSleepSeconds needs Kubernetes >= 1.30 (the preStop sleep action); this cluster is %s (helm template: pass --kube-version)" .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- sub $t $p -}}
{{- end -}}

{{/* True ("true") when the gateway needs the TEE's quote interface. */}}
{{- define "tdxl.needsQuote" -}}
{{- if and .Values.attestation.enabled (has .Values.attestation.tee (list "auto" "tdx" "sev-snp")) -}}true{{- end -}}
{{- end -}}

{{/* True when the quote interface is reached through the configfs-tsm hostPath mount. */}}
{{- define "tdxl.configfsQuote" -}}
{{- if and (include "tdxl.needsQuote" .) (eq .Values.attestation.quoteAccess "configfs") -}}true{{- end -}}
{{- end -}}

{{/* True when the RTMR sysfs directory is mounted (explicit tee=tdx with extendRTMR). */}}
{{- define "tdxl.rtmrSysfs" -}}
{{- if and .Values.attestation.enabled (eq .Values.attestation.tee "tdx") .Values.attestation.extendRTMR -}}true{{- end -}}
{{- end -}}

{{/* True when the gateway writes below /sys (configfs-tsm or the RTMR sysfs). */}}
{{- define "tdxl.hostSysWrites" -}}
{{- if or (include "tdxl.configfsQuote" .) (include "tdxl.rtmrSysfs" .) -}}true{{- end -}}
{{- end -}}

{{/* The AppArmor profile of the gateway when it writes below /sys (the container runtimes' default
profile denies writes below /sys), or "" (runtime default). */}}
{{- define "tdxl.gatewayAppArmor" -}}
{{- $p := .Values.attestation.hostAccessAppArmorProfile -}}
{{- if and (include "tdxl.hostSysWrites" .) $p $p.type -}}
{{- if eq $p.type "Localhost" -}}localhost/{{ required "attestation.hostAccessAppArmorProfile.localhostProfile is required for type Localhost" $p.localhostProfile }}{{- else -}}{{ lower $p.type }}{{- end -}}
{{- end -}}
{{- end -}}

{{/* Kubernetes >= 1.30 takes the AppArmor profile as a securityContext field, older ones as an annotation. */}}
{{- define "tdxl.appArmorField" -}}
{{- if semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version -}}true{{- end -}}
{{- end -}}

{{/* A volume: its name and exactly one volume source. */}}
{{- define "tdxl.volume" -}}
{{- $key := index . 0 -}}
{{- $vol := index . 1 -}}
{{- if not $vol.name -}}
{{- fail (printf "volumes.%s.name must be set" $key) -}}
{{- end -}}
{{- $sources := list -}}
{{- range $k, $v := $vol -}}
{{- if and (ne $k "name") (not (kindIs "invalid" $v)) -}}
{{- $sources = append $sources $k -}}
{{- end -}}
{{- end -}}
{{- if ne (len $sources) 1 -}}
{{- fail (printf "volumes.%s needs exactly one volume source, found %d (%s); set the unused one to null, e.g. --set volumes.%s.%s=null" $key (len $sources) (join ", " $sources) $key (first $sources | default "emptyDir")) -}}
{{- end -}}
- name: {{ $vol.name }}
  {{- $src := first $sources }}
  {{- $val := index $vol $src }}
  {{- if empty $val }}
  {{ $src }}: {}
  {{- else }}
  {{ $src }}: {{- toYaml $val | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* Checks of the values that Kubernetes would not catch at install time. */}}
{{- define "tdxl.validate" -}}
{{- $a := .Values.attestation -}}
{{- if not (has $a.tee (list "auto" "tdx" "sev-snp" "none" "simulated")) -}}
{{- fail (printf "attestation.tee must be one of auto, tdx, sev-snp, none, simulated; got %q" (toString $a.tee)) -}}
{{- end -}}
{{- if not (has $a.tls.mode (list "selfSigned" "acme" "existingSecret")) -}}
{{- fail (printf "attestation.tls.mode must be one of selfSigned, acme, existingSecret; got %q" (toString $a.tls.mode)) -}}
{{- end -}}
{{- if and $a.enabled (eq $a.tls.mode "acme") (or (not $a.tls.acme.email) (not $a.tls.acme.domains)) -}}
{{- fail "attestation.tls.mode=acme needs attestation.tls.acme.email and at least one attestation.tls.acme.domains entry" -}}
{{- end -}}
{{- if and $a.enabled (eq $a.tls.mode "existingSecret") (not $a.tls.existingSecret) -}}
{{- fail "attestation.tls.mode=existingSecret needs attestation.tls.existingSecret (a kubernetes.io/tls Secret)" -}}
{{- end -}}
{{- if not (has $a.quoteAccess (list "configfs" "devicePlugin")) -}}
{{- fail (printf "attestation.quoteAccess must be configfs or devicePlugin; got %q" (toString $a.quoteAccess)) -}}
{{- end -}}
{{- if and (include "tdxl.needsQuote" .) (eq $a.quoteAccess "devicePlugin") (not $a.devicePluginResource) -}}
{{- fail "attestation.quoteAccess=devicePlugin needs attestation.devicePluginResource (the extended resource exposing /dev/tdx_guest)" -}}
{{- end -}}
{{- if and $a.enabled (eq (int $a.port) (int (include "tdxl.backendPort" .))) -}}
{{- fail (printf "attestation.port (%d) must differ from the backend's port %s, which stays on 127.0.0.1" (int $a.port) (include "tdxl.backendPort" .)) -}}
{{- end -}}
{{- end -}}
