{{/*
Names and labels shared by every template. Names are capped at 63 characters (DNS labels);
the Service name is also a DNS name inside the webhook certificate, so it must not change
between the Certificate, the Secret and the webhook configurations.
*/}}

{{- define "zen-flow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "zen-flow.fullname" -}}
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
{{- end -}}

{{- define "zen-flow.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "zen-flow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "zen-flow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "zen-flow.labels" -}}
helm.sh/chart: {{ include "zen-flow.chart" . }}
{{ include "zen-flow.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: zen-flow
{{- end -}}

{{- define "zen-flow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "zen-flow.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* One Service carries both ports; the webhook certificate names it. */}}
{{- define "zen-flow.serviceName" -}}
{{- include "zen-flow.fullname" . -}}
{{- end -}}

{{- define "zen-flow.tlsSecretName" -}}
{{- printf "%s-webhook-tls" (include "zen-flow.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "zen-flow.certificateName" -}}
{{- printf "%s-webhook" (include "zen-flow.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "zen-flow.issuerName" -}}
{{- printf "%s-selfsigned" (include "zen-flow.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "zen-flow.leaseName" -}}
{{- default (printf "%s-leader" (include "zen-flow.fullname" .) | trunc 63 | trimSuffix "-") .Values.leaderElection.leaseName -}}
{{- end -}}

{{/*
The DNS names the API server may use to reach the webhook Service. It dials
<service>.<namespace>.svc; the shorter forms serve in-namespace clients and tools.
*/}}
{{- define "zen-flow.webhookDNSNames" -}}
{{- $svc := include "zen-flow.serviceName" . -}}
{{- list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) | toJson -}}
{{- end -}}

{{/*
Leader election: "true"/"false" as a string (templates return strings). Replicas beyond one
without it would reconcile the same flows twice at once, so that combination is refused.
*/}}
{{- define "zen-flow.leaderElection" -}}
{{- $enabled := .Values.leaderElection.enabled -}}
{{- if kindIs "invalid" $enabled -}}
{{- gt (int .Values.replicaCount) 1 | toString -}}
{{- else if and (not $enabled) (gt (int .Values.replicaCount) 1) -}}
{{- fail "leaderElection.enabled=false needs replicaCount=1: several replicas without leader election would reconcile the same flows at once; drop leaderElection.enabled or set it to true" -}}
{{- else -}}
{{- $enabled | toString -}}
{{- end -}}
{{- end -}}

{{- define "zen-flow.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Self-signed mode: the CA, certificate and key (base64), reused from the release's Secret when
it already holds all three, so `helm upgrade` keeps the caBundle and the serving certificate in
step. `lookup` sees nothing in `helm template` or a client-side dry run: those print a fresh
pair, which is expected.
*/}}
{{- define "zen-flow.selfSignedCerts" -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "zen-flow.tlsSecretName" .) -}}
{{- if and $existing $existing.data (index $existing.data "ca.crt") (index $existing.data "tls.crt") (index $existing.data "tls.key") -}}
ca: {{ index $existing.data "ca.crt" | quote }}
crt: {{ index $existing.data "tls.crt" | quote }}
key: {{ index $existing.data "tls.key" | quote }}
{{- else -}}
{{- $days := int .Values.certificates.selfSigned.validityDays -}}
{{- $dns := include "zen-flow.webhookDNSNames" . | fromJsonArray -}}
{{- $ca := genCA (printf "%s-webhook-ca" (include "zen-flow.fullname" .)) $days -}}
{{- $cert := genSignedCert (last $dns) nil $dns $days $ca -}}
ca: {{ $ca.Cert | b64enc | quote }}
crt: {{ $cert.Cert | b64enc | quote }}
key: {{ $cert.Key | b64enc | quote }}
{{- end -}}
{{- end -}}
