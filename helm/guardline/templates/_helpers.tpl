{{/*
The mesh's components: values key, Kubernetes name (also the
ServiceAccount and so the SPIFFE identity `sa/<name>`), whether it holds
keys in Vault, whom it calls (the NetworkPolicy edges), and whether it may
run more than one replica. None may yet: each still assumes one process
(audit sequences a tenant's log in memory, background jobs hold no lease,
identity publishes only its own signing key); the scale-out work flips
`scalable` per component as it lands.
*/}}
{{- define "guardline.components" -}}
identity:
  name: identity
  scalable: false
  vault: true
  calls: [audit]
leadVault:
  name: lead-vault
  scalable: false
  vault: true
  calls: [identity, audit, recordings]
dialerPolicy:
  name: dialer-policy
  scalable: false
  vault: false
  calls: [identity, audit, leadVault]
recordings:
  name: recordings
  scalable: false
  vault: true
  calls: [identity, audit]
audit:
  name: audit
  scalable: false
  vault: true
  calls: [identity]
{{- end -}}

{{/* What the operator calls. */}}
{{- define "guardline.operatorCalls" -}}
[identity, leadVault, recordings, audit]
{{- end -}}

{{- define "guardline.labels" -}}
app.kubernetes.io/part-of: guardline
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The name label alone, beside guardline.labels (args: root, name). */}}
{{- define "guardline.name" -}}
app.kubernetes.io/name: {{ .name }}
{{- end -}}

{{/* Selector labels of component `name` (args: root, name). */}}
{{- define "guardline.selector" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "guardline.image" -}}
{{- $tag := .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{ printf "%s/guardline-%s:%s" .root.Values.image.registry .binary $tag }}
{{- end -}}

{{/* The endpoint of component key `key`. */}}
{{- define "guardline.endpoint" -}}
{{- $c := index (include "guardline.components" .root | fromYaml) .key -}}
{{- $v := index .root.Values.components .key -}}
{{ printf "https://%s.%s.svc:%v" $c.name .root.Release.Namespace $v.port }}
{{- end -}}

{{/* The secret holding component `name`'s certificate. */}}
{{- define "guardline.tlsSecret" -}}
{{- $key := .key -}}
{{- $existing := index .root.Values.tls.existingSecrets $key -}}
{{- if $existing -}}{{ $existing }}{{- else if eq .root.Values.tls.source "existingSecrets" -}}
{{- fail (printf "tls.existingSecrets.%s: required with tls.source existingSecrets" $key) -}}
{{- else -}}{{ printf "%s-tls" .name }}{{- end -}}
{{- end -}}

{{/* Pod security context: non-root uid 65532, seccomp RuntimeDefault. */}}
{{- define "guardline.podSecurity" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container security context: restricted. */}}
{{- define "guardline.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Topology spread over zones and nodes for selector `labels`. */}}
{{- define "guardline.spread" -}}
{{- $skew := .root.Values.topologySpreadConstraints.maxSkew -}}
- maxSkew: {{ $skew }}
  topologyKey: topology.kubernetes.io/zone
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "guardline.selector" . | nindent 6 }}
- maxSkew: {{ $skew }}
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "guardline.selector" . | nindent 6 }}
{{- end -}}

{{/* Settings every binary shares: mTLS files, mesh, logs, traces, metrics. */}}
{{- define "guardline.commonEnv" -}}
- name: GUARDLINE_TLS_CERT
  value: /etc/guardline/tls/tls.crt
- name: GUARDLINE_TLS_KEY
  value: /etc/guardline/tls/tls.key
- name: GUARDLINE_TLS_CA
  value: /etc/guardline/tls/ca.crt
- name: GUARDLINE_TRUST_DOMAIN
  value: {{ .Values.trustDomain | quote }}
- name: GUARDLINE_NAMESPACE
  value: {{ .Release.Namespace | quote }}
{{- range $key := list "identity" "leadVault" "dialerPolicy" "recordings" "audit" }}
- name: GUARDLINE_{{ $key | snakecase | upper }}_ENDPOINT
  value: {{ include "guardline.endpoint" (dict "root" $ "key" $key) | quote }}
{{- end }}
- name: GUARDLINE_LOG
  value: {{ .Values.log.level | quote }}
- name: GUARDLINE_LOG_FORMAT
  value: {{ .Values.log.format | quote }}
- name: GUARDLINE_TRACE
  value: {{ .Values.traceFilter | quote }}
{{- with .Values.otlpEndpoint }}
- name: GUARDLINE_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- if .Values.metrics.enabled }}
- name: GUARDLINE_METRICS_ADDRESS
  value: {{ printf "0.0.0.0:%v" .Values.metrics.port | quote }}
{{- end }}
{{- end -}}

{{/* Vault settings of component `name` (args: root, name). */}}
{{- define "guardline.vaultEnv" -}}
{{- $v := .root.Values.vault -}}
{{- if not $v.address }}{{ fail "vault.address: required" }}{{ end }}
- name: GUARDLINE_VAULT_ADDR
  value: {{ $v.address | quote }}
- name: GUARDLINE_VAULT_TRANSIT_MOUNT
  value: {{ $v.transitMount | quote }}
{{- if eq $v.auth.method "kubernetes" }}
- name: GUARDLINE_VAULT_K8S_ROLE
  value: {{ printf "%s%s" $v.auth.kubernetes.rolePrefix .name | quote }}
- name: GUARDLINE_VAULT_K8S_MOUNT
  value: {{ $v.auth.kubernetes.mount | quote }}
- name: GUARDLINE_VAULT_K8S_JWT_PATH
  value: /var/run/secrets/vault/token
{{- else }}
{{- if not $v.auth.approle.existingSecret }}{{ fail "vault.auth.approle.existingSecret: required with vault.auth.method approle" }}{{ end }}
- name: GUARDLINE_VAULT_APPROLE_MOUNT
  value: {{ $v.auth.approle.mount | quote }}
- name: GUARDLINE_VAULT_ROLE_ID
  valueFrom:
    secretKeyRef: {name: {{ $v.auth.approle.existingSecret }}, key: {{ printf "%s-role-id" .name }}}
- name: GUARDLINE_VAULT_SECRET_ID
  valueFrom:
    secretKeyRef: {name: {{ $v.auth.approle.existingSecret }}, key: {{ printf "%s-secret-id" .name }}}
{{- end }}
{{- end -}}

{{/* The projected Vault token volume (Kubernetes auth only). */}}
{{- define "guardline.vaultVolume" -}}
{{- if eq .Values.vault.auth.method "kubernetes" }}
- name: vault-token
  projected:
    sources:
      - serviceAccountToken:
          path: token
          audience: {{ .Values.vault.auth.kubernetes.audience | quote }}
          expirationSeconds: 3600
{{- end }}
{{- end -}}

{{/* Extra settings, checked to be Guardline's (args: env map, where). */}}
{{- define "guardline.extraEnv" -}}
{{- range $k, $v := .env }}
{{- if not (hasPrefix "GUARDLINE_" $k) }}{{ fail (printf "%s.%s: only GUARDLINE_* settings" $.where $k) }}{{ end }}
- name: {{ $k }}
  value: {{ $v | toString | quote }}
{{- end }}
{{- end -}}

{{/* Recordings' object storage. */}}
{{- define "guardline.recordingsEnv" -}}
{{- $r := .Values.recordings -}}
{{- if eq $r.storage "s3" }}
- name: GUARDLINE_S3_BUCKET
  value: {{ required "recordings.s3.bucket: required with recordings.storage s3" $r.s3.bucket | quote }}
- name: GUARDLINE_S3_REGION
  value: {{ $r.s3.region | quote }}
{{- with $r.s3.endpoint }}
- name: GUARDLINE_S3_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- if $r.s3.allowHttp }}
- name: GUARDLINE_S3_ALLOW_HTTP
  value: "true"
{{- end }}
{{- with $r.s3.existingSecret }}
- name: GUARDLINE_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef: {name: {{ . }}, key: access-key-id}
- name: GUARDLINE_S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ . }}, key: secret-access-key}
{{- end }}
{{- else }}
- name: GUARDLINE_RECORDINGS_DIR
  value: /var/lib/guardline/recordings
{{- end }}
{{- end -}}

{{/* Egress every pod needs: DNS, and the OTLP collector when set. */}}
{{- define "guardline.egressCommon" -}}
- ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]
  to:
    - namespaceSelector: {}
      podSelector:
        matchLabels:
          k8s-app: kube-dns
{{- if .Values.otlpEndpoint }}
{{ include "guardline.egressTo" .Values.networkPolicy.egress.otlp }}
{{- end }}
{{- end -}}

{{/* An egress rule to `to` on `port`. */}}
{{- define "guardline.egressTo" -}}
- ports: [{port: {{ .port }}, protocol: TCP}]
  to:
    {{- toYaml .to | nindent 4 }}
{{- end -}}
