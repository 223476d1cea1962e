{{/* Names, labels and the checks every template shares. */}}

{{- define "autoscaler-cloudscale.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release name alone when it already contains the chart's name (autoscaler-cloudscale). */}}
{{- define "autoscaler-cloudscale.fullname" -}}
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

{{- define "autoscaler-cloudscale.selectorLabels" -}}
app.kubernetes.io/name: {{ include "autoscaler-cloudscale.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "autoscaler-cloudscale.labels" -}}
{{ include "autoscaler-cloudscale.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "autoscaler-cloudscale.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "autoscaler-cloudscale.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The token Secret: the operator's own, or the one this chart creates. Exactly one source. */}}
{{- define "autoscaler-cloudscale.tokenSecret" -}}
{{- if and .Values.token.existingSecret .Values.token.value -}}
{{- fail "token: set either token.existingSecret (a Secret you created) or token.value (the chart creates the Secret), not both" -}}
{{- else if .Values.token.existingSecret -}}
{{- .Values.token.existingSecret -}}
{{- else if .Values.token.value -}}
{{- printf "%s-token" (include "autoscaler-cloudscale.fullname" .) -}}
{{- else -}}
{{- fail "token: set token.existingSecret to the name of a Secret holding the cloudscale.ch API token (key token.existingSecretKey), or token.value to the token itself" -}}
{{- end -}}
{{- end -}}

{{- define "autoscaler-cloudscale.userDataSecret" -}}
{{- if and .Values.userData.existingSecret .Values.userData.files -}}
{{- fail "userData: set either userData.existingSecret or userData.files, not both" -}}
{{- end -}}
{{- default (printf "%s-userdata" (include "autoscaler-cloudscale.fullname" .)) .Values.userData.existingSecret -}}
{{- end -}}

{{- define "autoscaler-cloudscale.serverSecret" -}}
{{- default (printf "%s-server-tls" (include "autoscaler-cloudscale.fullname" .)) .Values.tls.serverSecret -}}
{{- end -}}

{{/* The names CA may use for the provider: the Service's, short and long. */}}
{{- define "autoscaler-cloudscale.serviceHost" -}}
{{- printf "%s.%s.svc" (include "autoscaler-cloudscale.fullname" .) .Release.Namespace -}}
{{- end -}}

{{- define "autoscaler-cloudscale.checkTls" -}}
{{- if not (has .Values.tls.mode (list "certManager" "existingSecrets")) -}}
{{- fail (printf "tls.mode: %q is neither certManager nor existingSecrets" .Values.tls.mode) -}}
{{- end -}}
{{- if and (eq .Values.tls.mode "existingSecrets") (not .Values.tls.serverSecret) -}}
{{- fail "tls.mode existingSecrets: set tls.serverSecret to the Secret with the provider's tls.crt, tls.key and ca.crt" -}}
{{- end -}}
{{- end -}}
