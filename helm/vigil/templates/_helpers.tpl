{{/* The release's full name: the release name, with the chart's unless it already holds it. */}}
{{- define "vigil.fullname" -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- $full := ternary .Release.Name (printf "%s-%s" .Release.Name $name) (contains $name .Release.Name) -}}
{{- if gt (len $full) 40 -}}
{{- fail (printf "the release's full name %q is %d characters long: at most 40 fit the names derived from it (Services, pods, labels); choose a shorter release name" $full (len $full)) -}}
{{- end -}}
{{- $full -}}
{{- end -}}

{{/* The labels that select the cluster's pods. */}}
{{- define "vigil.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The labels that select the members' pods (not the proxy's). */}}
{{- define "vigil.memberLabels" -}}
{{ include "vigil.selectorLabels" . }}
app.kubernetes.io/component: database
{{- end -}}

{{/* Every object's labels. */}}
{{- define "vigil.labels" -}}
{{ include "vigil.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "vigil.scope" -}}
{{- default (include "vigil.fullname" .) .Values.scope -}}
{{- end -}}

{{- define "vigil.headless" -}}
{{- printf "%s-peers" (include "vigil.fullname" .) -}}
{{- end -}}

{{- define "vigil.secret" -}}
{{- default (printf "%s-auth" (include "vigil.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "vigil.raftTlsSecret" -}}
{{- default (printf "%s-raft-tls" (include "vigil.fullname" .)) .Values.raftTls.existingSecret -}}
{{- end -}}

{{- define "vigil.serviceAccount" -}}
{{- default (include "vigil.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "vigil.dbPort" -}}
{{- default (ternary 5432 3306 (eq .Values.engine "postgresql")) .Values.ports.database -}}
{{- end -}}

{{- define "vigil.superuser" -}}
{{- default (ternary "postgres" "vigil" (eq .Values.engine "postgresql")) .Values.auth.superuser -}}
{{- end -}}

{{- define "vigil.image" -}}
{{- $tag := default (ternary .Chart.AppVersion (printf "%s-mariadb" .Chart.AppVersion) (eq .Values.engine "postgresql")) .Values.image.tag -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}

{{/* The DNS name of member i's pod through the headless Service. */}}
{{- define "vigil.memberHost" -}}
{{- printf "%s-%d.%s.%s.svc.%s" (include "vigil.fullname" .root) .i (include "vigil.headless" .root) .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end -}}
