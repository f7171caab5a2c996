{{/*
Objects whose rendered text also feeds the pods' checksum annotations, so they are defined once here and
both rendered (configmap.yaml, secrets.yaml) and hashed (deployment.yaml) from the same definition.
*/}}

{{/* A service's QPQ_* settings as a dict: chart-managed first, then `config`, then the service's `config`. */}}
{{- define "qpq.configData" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $c := include "qpq.component" . | fromJson -}}
{{- $data := dict -}}
{{- range $k, $v := $root.Values.config }}{{ $_ := set $data $k (include "qpq.envValue" $v) }}{{ end -}}
{{- range $k, $v := (index $root.Values $name).config }}{{ $_ := set $data $k (include "qpq.envValue" $v) }}{{ end -}}
{{- $listen := ternary (printf "[%s]" $root.Values.listenHost) $root.Values.listenHost (contains ":" $root.Values.listenHost) -}}
{{- $_ := set $data "QPQ_DOMAIN" $root.Values.domain -}}
{{- $_ := set $data "QPQ_LISTEN" (printf "%s:%d" $listen (int $c.grpcPort)) -}}
{{- $_ := set $data "QPQ_METRICS_LISTEN" (printf "%s:%d" $listen (int $c.httpPort)) -}}
{{- $_ := set $data "QPQ_TLS_CA" "/etc/qpq/tls/ca.crt" -}}
{{- $_ := set $data "QPQ_TLS_CERT" "/etc/qpq/tls/tls.crt" -}}
{{- $_ := set $data "QPQ_TLS_KEY" "/etc/qpq/tls/tls.key" -}}
{{- if $c.nats -}}
{{- if eq $root.Values.nats.mode "bundled" -}}
{{- $_ := set $data "QPQ_NATS_URL" (printf "nats://%s:4222" (include "qpq.serviceHost" (dict "root" $root "name" "nats"))) -}}
{{- else if $root.Values.nats.external.url -}}
{{- $_ := set $data "QPQ_NATS_URL" $root.Values.nats.external.url -}}
{{- end -}}
{{- end -}}
{{- if eq $name "gateway" -}}
{{- $_ := set $data "QPQ_EDGE_TLS_CERT" "/etc/qpq/edge/tls.crt" -}}
{{- $_ := set $data "QPQ_EDGE_TLS_KEY" "/etc/qpq/edge/tls.key" -}}
{{- range $backend := include "qpq.backendNames" $root | fromJsonArray -}}
{{- $bc := include "qpq.component" (dict "root" $root "name" $backend) | fromJson -}}
{{- $_ := set $data (printf "QPQ_%s_ADDR" (upper $backend)) (printf "%s:%d" (include "qpq.serviceHost" (dict "root" $root "name" $backend)) (int $bc.grpcPort)) -}}
{{- end -}}
{{- end -}}
{{- if and (eq $name "ktlog") (include "qpq.signingKeyMounted" (dict "root" $root "key" "ktlogSigningKey")) -}}
{{- $_ := set $data "QPQ_KTLOG_SIGNING_KEY" "/etc/qpq/keys/signing-key.pem" -}}
{{- end -}}
{{- if and (eq $name "delivery") (include "qpq.signingKeyMounted" (dict "root" $root "key" "deliverySigningKey")) -}}
{{- $_ := set $data "QPQ_DELIVERY_SIGNING_KEY" "/etc/qpq/keys/signing-key.pem" -}}
{{- end -}}
{{- if and (eq $name "blob") $root.Values.blob.persistence.enabled -}}
{{- $_ := set $data "QPQ_BLOB_DIR" "/var/lib/qpq/blobs" -}}
{{- end -}}
{{- toJson $data -}}
{{- end }}

{{- define "qpq.configMap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "qpq.resourceName" (dict "root" .root "name" (printf "%s-config" .name)) }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "qpq.labels" (dict "root" .root "component" .name) | nindent 4 }}
data:
  {{- range $k, $v := include "qpq.configData" . | fromJson }}
  {{ $k }}: {{ $v | quote }}
  {{- end }}
{{- end }}

{{/* Whether a signing key is mounted into its service: from the existing Secret, inline, or generated. */}}
{{- define "qpq.signingKeyMounted" -}}
{{- $s := .root.Values.secrets -}}
{{- if or $s.existingSecret (index $s .key) $s.generateSigningKeys -}}true{{- end -}}
{{- end }}

{{/* The Secret with QPQ_DATABASE_URL for external Postgres given inline. */}}
{{- define "qpq.databaseSecret" -}}
{{- if and (eq .Values.postgresql.mode "external") .Values.postgresql.external.url (not .Values.postgresql.external.existingSecret) -}}
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "qpq.databaseUrlSecretName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "qpq.labels" (dict "root" .) | nindent 4 }}
type: Opaque
data:
  url: {{ .Values.postgresql.external.url | b64enc | quote }}
{{- end -}}
{{- end }}

{{/* What `checksum/config` covers for a service: its ConfigMap and the Secrets built from values alone. */}}
{{- define "qpq.configChecksum" -}}
{{- $root := .root -}}
{{- $c := include "qpq.component" . | fromJson -}}
{{- $parts := list (include "qpq.configMap" .) -}}
{{- if $c.database -}}{{- $parts = append $parts (include "qpq.databaseSecret" $root) -}}{{- end -}}
{{- if eq .name "auth" -}}{{- $parts = append $parts (printf "opaque=%s" ($root.Values.secrets.opaqueServerSetup | sha256sum)) -}}{{- end -}}
{{- if $root.Values.secrets.existingSecret -}}{{- $parts = append $parts (printf "appSecret=%s" $root.Values.secrets.existingSecret) -}}{{- end -}}
{{- join "\n---\n" $parts | sha256sum -}}
{{- end }}

{{/*
What `checksum/secrets` covers for a service: the generated material it mounts (its certificate, the
edge certificate, its signing key, the Postgres password). Stable across upgrades through lookup.
*/}}
{{- define "qpq.secretsChecksum" -}}
{{- $root := .root -}}
{{- include "qpq.generated" $root -}}
{{- $g := $root.Values.__qpqGenerated -}}
{{- $c := include "qpq.component" . | fromJson -}}
{{- $parts := list -}}
{{- with $g.internal -}}{{- $parts = append $parts (index . $.name | toJson) -}}{{- end -}}
{{- if and (eq .name "gateway") $g.edge -}}{{- $parts = append $parts ($g.edge | toJson) -}}{{- end -}}
{{- with $g.appKeys -}}
{{- $k := $root.Values.secrets.existingSecretKeys -}}
{{- if eq $.name "ktlog" -}}{{- $parts = append $parts (index . $k.ktlogSigningKey | default "") -}}{{- end -}}
{{- if eq $.name "delivery" -}}{{- $parts = append $parts (index . $k.deliverySigningKey | default "") -}}{{- end -}}
{{- end -}}
{{- if and $c.database $g.postgresPassword -}}{{- $parts = append $parts $g.postgresPassword -}}{{- end -}}
{{- join "\n---\n" $parts | sha256sum -}}
{{- end }}
