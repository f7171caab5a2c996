{{/*
Everything the chart generates: the internal CA and one certificate per service, the edge CA and the
gateway's edge certificate, the Ed25519 signing keys and the bundled Postgres password.

Generated once per render and kept in .Values.__qpqGenerated, so every template that needs a value (the
Secrets and the pods' checksum annotations) sees the same one. Kept across upgrades with `lookup`: an
existing Secret's material is reused while it still fits; a certificate is made anew (signed by the same
CA) when its names or validity setting change or when it is within 30 days of expiry. Without cluster
access (`helm template`, `--dry-run=client`) lookup finds nothing and everything is generated afresh.
*/}}
{{- define "qpq.generated" -}}
{{- $root := . -}}
{{- if not (hasKey $root.Values "__qpqGenerated") -}}
{{- $g := dict "internal" (dict) -}}
{{- $ns := $root.Release.Namespace -}}
{{- $fullname := include "qpq.fullname" $root -}}

{{- /* Internal CA and service certificates. */ -}}
{{- if not $root.Values.tls.internal.existingSecrets -}}
{{- $t := $root.Values.tls.internal -}}
{{- $caName := include "qpq.resourceName" (dict "root" $root "name" "internal-ca") -}}
{{- $ca := include "qpq.loadOrMakeCa" (dict "namespace" $ns "secret" $caName "cn" (printf "%s internal CA" $fullname) "days" $t.caValidityDays) | fromJson -}}
{{- $_ := set $g "internalCa" $ca -}}
{{- range $name := include "qpq.componentNames" $root | fromJsonArray -}}
{{- $host := include "qpq.resourceName" (dict "root" $root "name" $name) -}}
{{- $dns := list $name $host (printf "%s.%s" $host $ns) (printf "%s.%s.svc" $host $ns) (printf "%s.%s.svc.%s" $host $ns $root.Values.clusterDomain) -}}
{{- $dns = concat $dns $t.extraDnsNames | uniq -}}
{{- $secret := include "qpq.internalTlsSecretName" (dict "root" $root "name" $name) -}}
{{- $leaf := include "qpq.loadOrMakeLeaf" (dict "namespace" $ns "secret" $secret "ca" $ca "cn" $name "dns" $dns "ips" $t.extraIpAddresses "days" $t.validityDays "certKey" "tls.crt" "keyKey" "tls.key") | fromJson -}}
{{- $_ := set $g.internal $name $leaf -}}
{{- end -}}
{{- end -}}

{{- /* Edge CA and the gateway's client-facing certificate. */ -}}
{{- if not $root.Values.gateway.edgeTls.existingSecret -}}
{{- $e := $root.Values.gateway.edgeTls -}}
{{- $caName := include "qpq.resourceName" (dict "root" $root "name" "gateway-edge-ca") -}}
{{- $ca := include "qpq.loadOrMakeCa" (dict "namespace" $ns "secret" $caName "cn" (printf "%s edge CA" $fullname) "days" $e.caValidityDays) | fromJson -}}
{{- $_ := set $g "edgeCa" $ca -}}
{{- $host := include "qpq.resourceName" (dict "root" $root "name" "gateway") -}}
{{- $dns := concat $e.dnsNames (list $host (printf "%s.%s" $host $ns) (printf "%s.%s.svc" $host $ns) (printf "%s.%s.svc.%s" $host $ns $root.Values.clusterDomain)) -}}
{{- if $e.includeLocalhost -}}{{- $dns = append $dns "localhost" -}}{{- end -}}
{{- $cn := $e.dnsNames | first | default $host -}}
{{- $secret := include "qpq.edgeTlsSecretName" $root -}}
{{- $leaf := include "qpq.loadOrMakeLeaf" (dict "namespace" $ns "secret" $secret "ca" $ca "cn" $cn "dns" ($dns | uniq) "ips" $e.ipAddresses "days" $e.validityDays "certKey" "tls.crt" "keyKey" "tls.key") | fromJson -}}
{{- $_ := set $g "edge" $leaf -}}
{{- end -}}

{{- /* Signing keys and the OPAQUE setup: inline values win, then what the Secret already holds, then new keys. */ -}}
{{- if include "qpq.appSecretRendered" $root -}}
{{- $s := $root.Values.secrets -}}
{{- $k := $s.existingSecretKeys -}}
{{- $old := (lookup "v1" "Secret" $ns (include "qpq.appSecretName" $root)).data | default dict -}}
{{- $keys := dict -}}
{{- if $s.opaqueServerSetup -}}{{- $_ := set $keys $k.opaqueServerSetup $s.opaqueServerSetup -}}{{- end -}}
{{- range $pair := list (list $k.ktlogSigningKey $s.ktlogSigningKey) (list $k.deliverySigningKey $s.deliverySigningKey) -}}
{{- $key := index $pair 0 -}}
{{- if index $pair 1 -}}
{{- $_ := set $keys $key (index $pair 1) -}}
{{- else if hasKey $old $key -}}
{{- $_ := set $keys $key (index $old $key | b64dec) -}}
{{- else if $s.generateSigningKeys -}}
{{- $_ := set $keys $key (genPrivateKey "ed25519") -}}
{{- end -}}
{{- end -}}
{{- $_ := set $g "appKeys" $keys -}}
{{- end -}}

{{- /* Bundled Postgres password. */ -}}
{{- $pg := $root.Values.postgresql.bundled.auth -}}
{{- if and (eq $root.Values.postgresql.mode "bundled") (not $pg.existingSecret) -}}
{{- $old := (lookup "v1" "Secret" $ns (include "qpq.postgresSecretName" $root)).data | default dict -}}
{{- $password := $pg.password -}}
{{- if and (not $password) (hasKey $old "password") -}}{{- $password = index $old "password" | b64dec -}}{{- end -}}
{{- $_ := set $g "postgresPassword" ($password | default (randAlphaNum 32)) -}}
{{- end -}}

{{- $_ := set $root.Values "__qpqGenerated" $g -}}
{{- end -}}
{{- end }}

{{/*
A CA from its Secret (ca.crt, ca.key) or a new one: ECDSA P-256, like the dev certificates.
(dict "namespace" "secret" "cn" "days") → JSON {cert, key}
*/}}
{{- define "qpq.loadOrMakeCa" -}}
{{- $data := (lookup "v1" "Secret" .namespace .secret).data | default dict -}}
{{- if and (hasKey $data "ca.crt") (hasKey $data "ca.key") -}}
{{- dict "cert" (index $data "ca.crt" | b64dec) "key" (index $data "ca.key" | b64dec) | toJson -}}
{{- else -}}
{{- $ca := genCAWithKey .cn (int .days) (genPrivateKey "ecdsa") -}}
{{- dict "cert" $ca.Cert "key" $ca.Key | toJson -}}
{{- end -}}
{{- end }}

{{/*
A certificate signed by `ca`, usable as TLS server and client (mutual TLS). Reused from its Secret while
it was made from the same CA and the same spec (names, validity; recorded in an annotation) and is more
than 30 days from expiry. (dict "namespace" "secret" "ca" "cn" "dns" "ips" "days" "certKey" "keyKey")
→ JSON {cert, key, ca, spec, notAfter}
*/}}
{{- define "qpq.loadOrMakeLeaf" -}}
{{- $spec := printf "cn=%s;dns=%s;ip=%s;days=%v" .cn (join "," .dns) (join "," .ips) .days | sha256sum | trunc 16 -}}
{{- $existing := lookup "v1" "Secret" .namespace .secret -}}
{{- $data := $existing.data | default dict -}}
{{- $annotations := ($existing.metadata | default dict).annotations | default dict -}}
{{- $notAfter := index $annotations "qpq.dev/not-after" | default "0" | int64 -}}
{{- $fresh := gt $notAfter (add (now | unixEpoch | int64) (mul 30 86400)) -}}
{{- $sameCa := eq (index $data "ca.crt" | default "") (.ca.cert | b64enc) -}}
{{- $sameSpec := eq (index $annotations "qpq.dev/certificate-spec" | default "") $spec -}}
{{- if and $fresh $sameCa $sameSpec (hasKey $data .certKey) (hasKey $data .keyKey) -}}
{{- dict "cert" (index $data .certKey | b64dec) "key" (index $data .keyKey | b64dec) "ca" .ca.cert "spec" $spec "notAfter" (toString $notAfter) | toJson -}}
{{- else -}}
{{- $ca := buildCustomCert (.ca.cert | b64enc) (.ca.key | b64enc) -}}
{{- $leaf := genSignedCertWithKey .cn .ips .dns (int .days) $ca (genPrivateKey "ecdsa") -}}
{{- $expires := add (now | unixEpoch | int64) (mul (int .days) 86400) -}}
{{- dict "cert" $leaf.Cert "key" $leaf.Key "ca" .ca.cert "spec" $spec "notAfter" (toString $expires) | toJson -}}
{{- end -}}
{{- end }}
