{{/* Names, labels and small shared pieces. The configuration logic is in _config.tpl. */}}

{{- define "certfleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "certfleet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "certfleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "certfleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "certfleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "certfleet.labels" -}}
helm.sh/chart: {{ include "certfleet.chart" . }}
{{ include "certfleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: certfleet
{{- end }}

{{- define "certfleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "certfleet.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "certfleet.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/* The Secret the chart creates (when it has something to hold). */}}
{{- define "certfleet.secretName" -}}
{{- printf "%s-secrets" (include "certfleet.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "certfleet.configMapName" -}}
{{- printf "%s-config" (include "certfleet.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "certfleet.pvcName" -}}
{{- if .Values.persistence.existingClaim }}
{{- .Values.persistence.existingClaim }}
{{- else }}
{{- printf "%s-data" (include "certfleet.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Where things are mounted in the pod. */}}
{{- define "certfleet.configDir" -}}/etc/certfleet/config{{- end }}
{{- define "certfleet.secretsDir" -}}/etc/certfleet/secrets{{- end }}
{{- define "certfleet.existingSecretDir" -}}/etc/certfleet/existing-secret{{- end }}
{{- define "certfleet.tlsDir" -}}/etc/certfleet/tls{{- end }}
