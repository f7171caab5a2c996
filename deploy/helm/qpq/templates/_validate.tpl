{{/*
Checks across values that the schema cannot express; each failure is one line naming the values to fix.
Called from configmap.yaml, so `helm template`, `helm lint` and `helm install` all stop on it.
*/}}
{{- define "qpq.validate" -}}
{{- $v := .Values -}}
{{- $s := $v.secrets -}}
{{- if and $s.existingSecret (or $s.opaqueServerSetup $s.ktlogSigningKey $s.deliverySigningKey) -}}
{{- fail "secrets: set either secrets.existingSecret or the inline secrets.opaqueServerSetup/ktlogSigningKey/deliverySigningKey, never both" -}}
{{- end -}}
{{- if eq $v.postgresql.mode "external" -}}
{{- if and $v.postgresql.external.url $v.postgresql.external.existingSecret -}}
{{- fail "postgresql.external: set either url or existingSecret, never both" -}}
{{- end -}}
{{- if not (or $v.postgresql.external.url $v.postgresql.external.existingSecret) -}}
{{- fail "postgresql.mode=external needs postgresql.external.url or postgresql.external.existingSecret" -}}
{{- end -}}
{{- else if and $v.postgresql.bundled.auth.password $v.postgresql.bundled.auth.existingSecret -}}
{{- fail "postgresql.bundled.auth: set either password or existingSecret, never both" -}}
{{- end -}}
{{- if eq $v.nats.mode "external" -}}
{{- if and $v.nats.external.url $v.nats.external.existingSecret -}}
{{- fail "nats.external: set either url or existingSecret, never both" -}}
{{- end -}}
{{- if not (or $v.nats.external.url $v.nats.external.existingSecret) -}}
{{- fail "nats.mode=external needs nats.external.url or nats.external.existingSecret" -}}
{{- end -}}
{{- end -}}
{{- with $v.tls.internal.existingSecrets -}}
{{- $missing := list -}}
{{- range $name := include "qpq.componentNames" $ | fromJsonArray -}}
{{- if not (index $v.tls.internal.existingSecrets $name) -}}{{- $missing = append $missing $name -}}{{- end -}}
{{- end -}}
{{- if $missing -}}
{{- fail (printf "tls.internal.existingSecrets needs a Secret for every service; missing: %s" (join ", " $missing)) -}}
{{- end -}}
{{- end -}}
{{- if and $v.gateway.edgeTls.existingSecret (or $v.gateway.edgeTls.dnsNames $v.gateway.edgeTls.ipAddresses) -}}
{{- fail "gateway.edgeTls: dnsNames/ipAddresses shape the generated certificate only; with existingSecret put the names into your certificate and remove them here" -}}
{{- end -}}
{{- range $name := include "qpq.componentNames" $ | fromJsonArray -}}
{{- $svc := index $v $name -}}
{{- if and $svc.autoscaling.enabled (gt (int $svc.autoscaling.minReplicas) (int $svc.autoscaling.maxReplicas)) -}}
{{- fail (printf "%s.autoscaling: minReplicas (%v) is above maxReplicas (%v)" $name $svc.autoscaling.minReplicas $svc.autoscaling.maxReplicas) -}}
{{- end -}}
{{- end -}}
{{- $storage := index $v.blob.config "QPQ_BLOB_STORAGE" | default "postgres" -}}
{{- if and (eq $storage "fs") (not $v.blob.persistence.enabled) -}}
{{- fail "blob.config.QPQ_BLOB_STORAGE=fs needs blob.persistence.enabled=true (the files would be lost with the pod)" -}}
{{- end -}}
{{- if and $v.blob.persistence.enabled (ne $storage "fs") -}}
{{- fail "blob.persistence.enabled is set but blob.config.QPQ_BLOB_STORAGE is not fs: set both or neither" -}}
{{- end -}}
{{- if and $v.blob.persistence.enabled (not $v.blob.persistence.existingClaim) (not (has "ReadWriteMany" $v.blob.persistence.accessModes)) (or $v.blob.autoscaling.enabled (gt (int $v.blob.replicas) 1)) -}}
{{- fail "blob: more than one replica on QPQ_BLOB_STORAGE=fs needs blob.persistence.accessModes [ReadWriteMany] (or an existingClaim that is)" -}}
{{- end -}}
{{- end }}
