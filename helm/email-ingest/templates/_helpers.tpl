{{/*
Names. The full name is the release name, plus the chart name unless the release name contains it; every
resource of a component is named "<fullname>-<component>".
*/}}
{{- define "email-ingest.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "email-ingest.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "email-ingest.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of a component's resources. Call with (dict "root" $ "component" "api"). */}}
{{- define "email-ingest.componentName" -}}
{{- printf "%s-%s" (include "email-ingest.fullname" .root) .component }}
{{- end }}

{{/* Labels on every resource. */}}
{{- define "email-ingest.labels" -}}
helm.sh/chart: {{ include "email-ingest.chart" . }}
app.kubernetes.io/name: {{ include "email-ingest.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "email-ingest.imageTag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: email-ingest
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of a component's resources. Call with (dict "root" $ "component" "api"). */}}
{{- define "email-ingest.componentLabels" -}}
{{ include "email-ingest.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Selector labels of a component. Call with (dict "root" $ "component" "api"). */}}
{{- define "email-ingest.selectorLabels" -}}
app.kubernetes.io/name: {{ include "email-ingest.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The one tag both images run: image.tag, else the chart's appVersion. */}}
{{- define "email-ingest.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion | toString }}
{{- end }}

{{/* A component's image reference. Call with (dict "root" $ "component" "api"). */}}
{{- define "email-ingest.image" -}}
{{- $values := index .root.Values .component }}
{{- $repository := $values.image.repository }}
{{- with .root.Values.image.registry }}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository }}
{{- end }}
{{- if $values.image.digest }}
{{- printf "%s:%s@%s" $repository (include "email-ingest.imageTag" .root) $values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (include "email-ingest.imageTag" .root) }}
{{- end }}
{{- end }}

{{/* A component's ServiceAccount name. Call with (dict "root" $ "component" "api"). */}}
{{- define "email-ingest.serviceAccountName" -}}
{{- $sa := (index .root.Values .component).serviceAccount }}
{{- if $sa.create }}
{{- default (include "email-ingest.componentName" .) $sa.name }}
{{- else }}
{{- default "default" $sa.name }}
{{- end }}
{{- end }}

{{/* The redrive tool's ServiceAccount name: redrive.serviceAccount.name, else <fullname>-redrive. */}}
{{- define "email-ingest.redriveServiceAccountName" -}}
{{- default (include "email-ingest.componentName" (dict "root" . "component" "redrive")) .Values.redrive.serviceAccount.name }}
{{- end }}

{{/*
terminationGracePeriodSeconds of a component, derived from the values it must cover, so that they cannot disagree:
the preStop sleep runs first, then SIGTERM starts the drain of at most SHUTDOWN_GRACE_SECONDS, then a margin.
*/}}
{{- define "email-ingest.terminationGracePeriodSeconds" -}}
{{- $values := index .root.Values .component }}
{{- add $values.preStopSleepSeconds $values.config.shutdownGraceSeconds $values.terminationMarginSeconds }}
{{- end }}

{{/* True ("true") when something other than the Deployment sets the replica count of a component. */}}
{{- define "email-ingest.replicasManaged" -}}
{{- $values := index .root.Values .component }}
{{- if or $values.autoscaling.enabled (and (eq .component "consumer") $values.keda.enabled) }}true{{ end }}
{{- end }}

{{/* Required values, checked once by every component's ConfigMap. */}}
{{- define "email-ingest.validate" -}}
{{- range $key := list "region" "sqsQueueUrl" "s3Bucket" }}
{{- if not (get $.Values.aws $key) }}
{{- fail (printf "aws.%s is required (see ci/minimal-values.yaml)" $key) }}
{{- end }}
{{- end }}
{{- if not (or .Values.aws.tokenParameterName .Values.aws.tokenParameterPath) }}
{{- fail "aws.tokenParameterName or aws.tokenParameterPath is required (see ci/minimal-values.yaml)" }}
{{- end }}
{{- if and .Values.tracing.enabled (not .Values.tracing.endpoint) }}
{{- fail "tracing.endpoint is required when tracing.enabled (the collector's OTLP endpoint, e.g. http://adot-collector.observability:4318)" }}
{{- end }}
{{- if and .Values.api.ingress.enabled (eq .Values.api.ingress.alb.targetType "instance") (ne .Values.api.service.type "NodePort") }}
{{- fail "api.ingress.alb.targetType=instance needs api.service.type=NodePort" }}
{{- end }}
{{- if and .Values.api.ingress.enabled (ge (int .Values.api.ingress.alb.deregistrationDelaySeconds) (int (add .Values.api.preStopSleepSeconds .Values.api.config.shutdownGraceSeconds))) }}
{{- fail "api.ingress.alb.deregistrationDelaySeconds must be below api.preStopSleepSeconds + api.config.shutdownGraceSeconds: the ALB would still send requests to a stopped pod" }}
{{- end }}
{{- $consumer := .Values.consumer }}
{{- $pods := int $consumer.replicaCount }}
{{- if $consumer.keda.enabled }}{{ $pods = int $consumer.keda.maxReplicaCount }}
{{- else if $consumer.autoscaling.enabled }}{{ $pods = int $consumer.autoscaling.maxReplicas }}
{{- end }}
{{- $inFlight := int (default (ternary 10000 64 (eq $consumer.config.storageLayout "batched")) $consumer.config.maxInFlight) }}
{{- if gt (mul $pods $inFlight) 120000 }}
{{- fail (printf "consumer: up to %d pods x %d messages in flight (consumer.config.maxInFlight) is above SQS's 120,000 in-flight messages per queue: lower maxInFlight or the replica bound" $pods $inFlight) }}
{{- end }}
{{- end }}
