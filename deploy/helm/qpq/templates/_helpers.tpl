{{/*
Names, labels and the per-service facts every template shares. Helpers that need a service take
(dict "root" $ "name" "<service>").
*/}}

{{/* The six services, their container ports and what they use. Ports are the code's defaults. */}}
{{- define "qpq.components" -}}
gateway:
  grpcPort: 7000
  httpPort: 9100
  database: false
  nats: true
auth:
  grpcPort: 7101
  httpPort: 9101
  database: true
  nats: true
keypackage:
  grpcPort: 7102
  httpPort: 9102
  database: true
  nats: true
delivery:
  grpcPort: 7103
  httpPort: 9103
  database: true
  nats: true
ktlog:
  grpcPort: 7104
  httpPort: 9104
  database: true
  nats: true
blob:
  grpcPort: 7105
  httpPort: 9105
  database: true
  nats: false
{{- end }}

{{/* Service names in a fixed order (gateway first), for loops whose output order matters to readers. */}}
{{- define "qpq.componentNames" -}}
{{- list "gateway" "auth" "keypackage" "delivery" "ktlog" "blob" | toJson -}}
{{- end }}

{{/* The backends the gateway calls, with the QPQ_*_ADDR variable naming each. */}}
{{- define "qpq.backendNames" -}}
{{- list "auth" "keypackage" "delivery" "ktlog" "blob" | toJson -}}
{{- end }}

{{- define "qpq.component" -}}
{{- index (fromYaml (include "qpq.components" .root)) .name | toJson -}}
{{- end }}

{{- define "qpq.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{- define "qpq.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/* `<fullname>-<suffix>`, within the 63 characters of a DNS label. (dict "root" $ "name" "auth") */}}
{{- define "qpq.resourceName" -}}
{{- printf "%s-%s" (include "qpq.fullname" .root | trunc (int (sub 62 (len .name)))) .name | trimSuffix "-" -}}
{{- end }}

{{- define "qpq.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/* Labels of every object; `component` optional. (dict "root" $ "component" "auth") */}}
{{- define "qpq.labels" -}}
helm.sh/chart: {{ include "qpq.chart" .root }}
{{ include "qpq.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: qpq
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "qpq.selectorLabels" -}}
app.kubernetes.io/name: {{ include "qpq.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{/* `<svc>.<namespace>.svc` of a component's Service: what the gateway dials and the certificates name. */}}
{{- define "qpq.serviceHost" -}}
{{- printf "%s.%s.svc" (include "qpq.resourceName" .) .root.Release.Namespace -}}
{{- end }}

{{- define "qpq.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "qpq.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end }}

{{/* `<registry>/qpq-<name>:<tag>`. (dict "root" $ "name" "auth" "image" .Values.auth.image) */}}
{{- define "qpq.image" -}}
{{- $root := .root -}}
{{- $repository := .image.repository -}}
{{- if not $repository -}}
{{- $repository = ternary (printf "%s/qpq-%s" (trimSuffix "/" $root.Values.image.registry) .name) (printf "qpq-%s" .name) (ne $root.Values.image.registry "") -}}
{{- end -}}
{{- $tag := .image.tag | default $root.Values.image.tag | default $root.Chart.AppVersion -}}
{{- printf "%s:%s" $repository (toString $tag) -}}
{{- end }}

{{- define "qpq.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets -}}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end }}

{{/*
A value as an environment variable's text. Helm reads numbers in values as float64, which would print
52428800 as 5.24288e+07: whole numbers are printed as integers.
*/}}
{{- define "qpq.envValue" -}}
{{- if kindIs "float64" . -}}
{{- if eq (float64 (int64 .)) . -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end }}

{{/* The Secret with the app keys: the existing one, or the one the chart renders. */}}
{{- define "qpq.appSecretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else -}}
{{- include "qpq.resourceName" (dict "root" . "name" "keys") -}}
{{- end -}}
{{- end }}

{{/* Whether the OPAQUE server setup comes from a Secret. */}}
{{- define "qpq.opaqueFromSecret" -}}
{{- if or .Values.secrets.existingSecret .Values.secrets.opaqueServerSetup -}}true{{- end -}}
{{- end }}

{{/* Whether the chart renders its own app Secret. */}}
{{- define "qpq.appSecretRendered" -}}
{{- $s := .Values.secrets -}}
{{- if and (not $s.existingSecret) (or $s.opaqueServerSetup $s.ktlogSigningKey $s.deliverySigningKey $s.generateSigningKeys) -}}true{{- end -}}
{{- end }}

{{/* The Secret holding a service's internal certificate (ca.crt, tls.crt, tls.key). */}}
{{- define "qpq.internalTlsSecretName" -}}
{{- $existing := .root.Values.tls.internal.existingSecrets -}}
{{- if $existing -}}
{{- index $existing .name -}}
{{- else -}}
{{- include "qpq.resourceName" (dict "root" .root "name" (printf "%s-mtls" .name)) -}}
{{- end -}}
{{- end }}

{{- define "qpq.edgeTlsSecretName" -}}
{{- default (include "qpq.resourceName" (dict "root" . "name" "gateway-edge-tls")) .Values.gateway.edgeTls.existingSecret -}}
{{- end }}

{{/* The Secret and key holding QPQ_DATABASE_URL for external Postgres. */}}
{{- define "qpq.databaseUrlSecretName" -}}
{{- default (include "qpq.resourceName" (dict "root" . "name" "database")) .Values.postgresql.external.existingSecret -}}
{{- end }}

{{- define "qpq.databaseUrlSecretKey" -}}
{{- if .Values.postgresql.external.existingSecret -}}{{ .Values.postgresql.external.existingSecretKey }}{{- else -}}url{{- end -}}
{{- end }}

{{- define "qpq.postgresSecretName" -}}
{{- default (include "qpq.resourceName" (dict "root" . "name" "postgresql")) .Values.postgresql.bundled.auth.existingSecret -}}
{{- end }}

{{- define "qpq.postgresSecretKey" -}}
{{- if .Values.postgresql.bundled.auth.existingSecret -}}{{ .Values.postgresql.bundled.auth.existingSecretKey }}{{- else -}}password{{- end -}}
{{- end }}

{{/*
Environment of a container that needs Postgres: QPQ_DATABASE_URL from a Secret. With bundled Postgres
the URL is assembled by Kubernetes from the password ($(…) expands variables defined before it).
*/}}
{{- define "qpq.databaseEnv" -}}
{{- $root := . -}}
{{- if eq .Values.postgresql.mode "bundled" }}
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "qpq.postgresSecretName" $root }}
      key: {{ include "qpq.postgresSecretKey" $root }}
- name: QPQ_DATABASE_URL
  value: {{ printf "postgres://%s:$(POSTGRES_PASSWORD)@%s:5432/%s" .Values.postgresql.bundled.auth.username (include "qpq.serviceHost" (dict "root" $root "name" "postgresql")) .Values.postgresql.bundled.auth.database | quote }}
{{- else }}
- name: QPQ_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "qpq.databaseUrlSecretName" $root }}
      key: {{ include "qpq.databaseUrlSecretKey" $root }}
{{- end }}
{{- end }}

{{/* QPQ_NATS_URL when it lives in a Secret (external NATS with existingSecret); otherwise it is in the ConfigMap. */}}
{{- define "qpq.natsEnv" -}}
{{- if and (eq .Values.nats.mode "external") .Values.nats.external.existingSecret }}
- name: QPQ_NATS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.nats.external.existingSecret }}
      key: {{ .Values.nats.external.existingSecretKey }}
{{- end }}
{{- end }}

{{/* A service's settings with the shared defaults filled in for scheduling and pod metadata. */}}
{{- define "qpq.scheduling" -}}
{{- $root := .root -}}
{{- $svc := index $root.Values .name -}}
{{- $affinity := $svc.affinity | default $root.Values.affinity -}}
{{- if and (not $affinity) $root.Values.podAntiAffinity -}}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (fromYaml (include "qpq.selectorLabels" (dict "root" $root "component" .name)))) -}}
{{- if eq $root.Values.podAntiAffinity "hard" -}}
{{- $affinity = dict "podAntiAffinity" (dict "requiredDuringSchedulingIgnoredDuringExecution" (list $term)) -}}
{{- else -}}
{{- $affinity = dict "podAntiAffinity" (dict "preferredDuringSchedulingIgnoredDuringExecution" (list (dict "weight" 100 "podAffinityTerm" $term))) -}}
{{- end -}}
{{- end -}}
{{- with ($svc.nodeSelector | default $root.Values.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with ($svc.tolerations | default $root.Values.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with ($svc.topologySpreadConstraints | default $root.Values.topologySpreadConstraints) }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with ($svc.priorityClassName | default $root.Values.priorityClassName) }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}

{{/* The /tmp emptyDir every qpq container gets (its root filesystem is read-only). */}}
{{- define "qpq.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{/* A Kubernetes-style size ("8Gi", "512Mi", "1G", or bytes) in bytes, for nats.conf. */}}
{{- define "qpq.natsBytes" -}}
{{- $s := toString . -}}
{{- $units := dict "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "K" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 -}}
{{- $m := regexFind "^[0-9]+" $s -}}
{{- $unit := trimPrefix $m $s -}}
{{- if not $m -}}{{- fail (printf "not a size: %s (use e.g. 8Gi)" $s) -}}{{- end -}}
{{- if eq $unit "" -}}{{ $m }}{{- else if hasKey $units $unit -}}{{ mul (int64 $m) (index $units $unit) }}{{- else -}}{{- fail (printf "not a size: %s (use e.g. 8Gi)" $s) -}}{{- end -}}
{{- end }}
