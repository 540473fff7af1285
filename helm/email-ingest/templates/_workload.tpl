{{/*
Resources shared by both components. Each is called with (dict "root" $ "component" "api"|"consumer");
the component's values are under .Values.<component>.
*/}}

{{/* The container port of a component and the env vars that set it (docs/contract.md). */}}
{{- define "email-ingest.port" -}}
{{- if eq .component "api" }}8080{{ else }}8081{{ end }}
{{- end }}

{{- define "email-ingest.deployment" -}}
{{- $root := .root }}
{{- $values := index $root.Values .component }}
{{- $name := include "email-ingest.componentName" . }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "email-ingest.componentLabels" . | nindent 4 }}
spec:
  {{- if not (include "email-ingest.replicasManaged" .) }}
  replicas: {{ $values.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  selector:
    matchLabels:
      {{- include "email-ingest.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "email-ingest.selectorLabels" . | nindent 8 }}
        app.kubernetes.io/version: {{ include "email-ingest.imageTag" $root | quote }}
        {{- with $values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include "email-ingest.configmap" . | sha256sum }}
        {{- with $values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "email-ingest.serviceAccountName" . }}
      # IRSA does not need the Kubernetes API token: its webhook mounts a separate, audience-bound token.
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ include "email-ingest.terminationGracePeriodSeconds" . }}
      {{- with $values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        runAsNonRoot: true
        runAsUser: {{ $root.Values.securityContext.runAsUser }}
        runAsGroup: {{ $root.Values.securityContext.runAsGroup }}
        fsGroup: {{ $root.Values.securityContext.fsGroup }}
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: {{ .component }}
          image: {{ include "email-ingest.image" . | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          ports:
            - name: http
              containerPort: {{ include "email-ingest.port" . }}
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ $name }}
          securityContext:
            runAsNonRoot: true
            runAsUser: {{ $root.Values.securityContext.runAsUser }}
            runAsGroup: {{ $root.Values.securityContext.runAsGroup }}
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            privileged: false
            capabilities:
              drop:
                - ALL
            seccompProfile:
              type: RuntimeDefault
          startupProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: {{ $values.probes.startup.periodSeconds }}
            failureThreshold: {{ $values.probes.startup.failureThreshold }}
            timeoutSeconds: {{ $values.probes.startup.timeoutSeconds }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: {{ $values.probes.liveness.periodSeconds }}
            failureThreshold: {{ $values.probes.liveness.failureThreshold }}
            timeoutSeconds: {{ $values.probes.liveness.timeoutSeconds }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            periodSeconds: {{ $values.probes.readiness.periodSeconds }}
            failureThreshold: {{ $values.probes.readiness.failureThreshold }}
            timeoutSeconds: {{ $values.probes.readiness.timeoutSeconds }}
          lifecycle:
            # Endpoints and load balancers take a few seconds to drop a terminating pod; keep serving meanwhile.
            preStop:
              sleep:
                seconds: {{ $values.preStopSleepSeconds }}
          {{- with $values.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $root.Values.tmpSizeLimit }}
      {{- if $root.Values.topologySpread.enabled }}
      topologySpreadConstraints:
        - maxSkew: {{ $root.Values.topologySpread.maxSkew }}
          topologyKey: topology.kubernetes.io/zone
          whenUnsatisfiable: {{ $root.Values.topologySpread.zoneWhenUnsatisfiable }}
          labelSelector:
            matchLabels:
              {{- include "email-ingest.selectorLabels" . | nindent 14 }}
          matchLabelKeys:
            - pod-template-hash
        - maxSkew: {{ $root.Values.topologySpread.maxSkew }}
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: {{ $root.Values.topologySpread.hostnameWhenUnsatisfiable }}
          labelSelector:
            matchLabels:
              {{- include "email-ingest.selectorLabels" . | nindent 14 }}
          matchLabelKeys:
            - pod-template-hash
      {{- end }}
      {{- with $values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{- define "email-ingest.configmap" -}}
{{- $root := .root }}
{{- $values := index $root.Values .component }}
{{- $c := $values.config }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "email-ingest.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "email-ingest.componentLabels" . | nindent 4 }}
data:
  AWS_REGION: {{ $root.Values.aws.region | quote }}
  LOG_LEVEL: {{ $root.Values.logLevel | quote }}
  SQS_QUEUE_URL: {{ $root.Values.aws.sqsQueueUrl | quote }}
  {{- if eq .component "api" }}
  API_HOST: "0.0.0.0"
  API_PORT: {{ include "email-ingest.port" . | quote }}
  {{- with $root.Values.aws.tokenParameterName }}
  TOKEN_PARAMETER_NAME: {{ . | quote }}
  {{- end }}
  {{- with $root.Values.aws.tokenParameterPath }}
  TOKEN_PARAMETER_PATH: {{ . | quote }}
  {{- end }}
  MAX_CLIENTS: {{ $c.maxClients | int | quote }}
  RATE_LIMIT_RPS: {{ $c.rateLimitRps | toString | quote }}
  {{- if and $c.rateLimitBurst (gt (float64 $c.rateLimitRps) 0.0) }}
  RATE_LIMIT_BURST: {{ $c.rateLimitBurst | int | quote }}
  {{- end }}
  TOKEN_REFRESH_SECONDS: {{ $c.tokenRefreshSeconds | quote }}
  TOKEN_MAX_STALENESS_SECONDS: {{ $c.tokenMaxStalenessSeconds | quote }}
  TOKEN_ROTATION_GRACE_SECONDS: {{ $c.tokenRotationGraceSeconds | quote }}
  TOKEN_EARLY_REFRESH_SECONDS: {{ $c.tokenEarlyRefreshSeconds | quote }}
  PUBLISH_LINGER_MS: {{ $c.publishLingerMs | quote }}
  PUBLISH_MAX_BATCHES_IN_FLIGHT: {{ $c.publishMaxBatchesInFlight | quote }}
  PUBLISH_MAX_PENDING: {{ $c.publishMaxPending | quote }}
  PUBLISH_DEADLINE_SECONDS: {{ $c.publishDeadlineSeconds | quote }}
  PUBLISH_MAX_MESSAGE_BYTES: {{ $c.publishMaxMessageBytes | quote }}
  {{- with $c.maxBodyBytes }}
  MAX_BODY_BYTES: {{ . | int64 | quote }}
  {{- end }}
  {{- with $c.memoryBudgetBytes }}
  MEMORY_BUDGET_BYTES: {{ . | int64 | quote }}
  {{- end }}
  {{- else }}
  CONSUMER_HOST: "0.0.0.0"
  CONSUMER_PORT: {{ include "email-ingest.port" . | quote }}
  {{- with $root.Values.aws.sqsDlqUrl }}
  SQS_DLQ_URL: {{ . | quote }}
  {{- end }}
  S3_BUCKET: {{ $root.Values.aws.s3Bucket | quote }}
  S3_KEY_PREFIX: {{ $c.s3KeyPrefix | quote }}
  CONSUMER_POLLERS: {{ $c.pollers | quote }}
  {{- with $c.maxInFlight }}
  CONSUMER_MAX_IN_FLIGHT: {{ . | int64 | quote }}
  {{- end }}
  STORAGE_LAYOUT: {{ $c.storageLayout | quote }}
  BATCH_KEY_PREFIX: {{ $c.batchKeyPrefix | quote }}
  {{- with $c.batchMaxBytes }}
  BATCH_MAX_BYTES: {{ . | int64 | quote }}
  {{- end }}
  {{- with $c.batchMaxEmails }}
  BATCH_MAX_EMAILS: {{ . | int64 | quote }}
  {{- end }}
  {{- with $c.batchMaxSeconds }}
  BATCH_MAX_SECONDS: {{ . | quote }}
  {{- end }}
  {{- with $c.batchMaxHeldBytes }}
  BATCH_MAX_HELD_BYTES: {{ . | int64 | quote }}
  {{- end }}
  SQS_WAIT_TIME_SECONDS: {{ $c.sqsWaitTimeSeconds | quote }}
  VISIBILITY_TIMEOUT_SECONDS: {{ $c.visibilityTimeoutSeconds | quote }}
  HEARTBEAT_FRACTION: {{ $c.heartbeatFraction | quote }}
  POISON_RETRY_WINDOW_SECONDS: {{ $c.poisonRetryWindowSeconds | quote }}
  S3_MAX_ATTEMPTS: {{ $c.s3MaxAttempts | quote }}
  S3_MAX_CONCURRENT_WRITES: {{ $c.s3MaxConcurrentWrites | quote }}
  {{- if not (kindIs "invalid" $c.receiveFillSeconds) }}
  RECEIVE_FILL_SECONDS: {{ $c.receiveFillSeconds | quote }}
  {{- end }}
  QUEUE_METRICS_INTERVAL_SECONDS: {{ $c.queueMetricsIntervalSeconds | quote }}
  {{- end }}
  SHUTDOWN_GRACE_SECONDS: {{ $c.shutdownGraceSeconds | quote }}
  {{- with $root.Values.tracing }}
  {{- if .enabled }}
  OTEL_EXPORTER_OTLP_ENDPOINT: {{ .endpoint | quote }}
  OTEL_EXPORTER_OTLP_PROTOCOL: {{ .protocol | quote }}
  OTEL_TRACES_SAMPLER: {{ .sampler | quote }}
  OTEL_TRACES_SAMPLER_ARG: {{ .samplerRatio | toString | quote }}
  OTEL_SERVICE_NAME: {{ printf "email-ingest-%s" $.component | quote }}
  OTEL_RESOURCE_ATTRIBUTES: {{ join "," (compact (list (printf "k8s.namespace.name=%s" $root.Release.Namespace) .resourceAttributes)) | quote }}
  {{- end }}
  {{- end }}
  {{- range $key, $value := $values.extraEnv }}
  {{ $key }}: {{ $value | toString | quote }}
  {{- end }}
{{- end }}

{{- define "email-ingest.serviceaccount" -}}
{{- $values := index .root.Values .component }}
{{- if $values.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "email-ingest.serviceAccountName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "email-ingest.componentLabels" . | nindent 4 }}
  {{- if or $values.serviceAccount.roleArn $values.serviceAccount.annotations }}
  annotations:
    {{- with $values.serviceAccount.roleArn }}
    eks.amazonaws.com/role-arn: {{ . | quote }}
    {{- end }}
    {{- with $values.serviceAccount.annotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
automountServiceAccountToken: false
{{- end }}
{{- end }}

{{- define "email-ingest.pdb" -}}
{{- $values := index .root.Values .component }}
{{- if $values.podDisruptionBudget.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "email-ingest.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "email-ingest.componentLabels" . | nindent 4 }}
spec:
  maxUnavailable: {{ $values.podDisruptionBudget.maxUnavailable }}
  # A pod that never became ready may always be evicted, so a broken rollout cannot block node drains.
  unhealthyPodEvictionPolicy: AlwaysAllow
  selector:
    matchLabels:
      {{- include "email-ingest.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}

{{- define "email-ingest.hpa" -}}
{{- $values := index .root.Values .component }}
{{- $kedaOn := and (eq .component "consumer") $values.keda.enabled }}
{{- if and $values.autoscaling.enabled (not $kedaOn) }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "email-ingest.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "email-ingest.componentLabels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "email-ingest.componentName" . }}
  minReplicas: {{ $values.autoscaling.minReplicas }}
  maxReplicas: {{ $values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $values.autoscaling.targetCPUUtilizationPercentage }}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 300
{{- end }}
{{- end }}

{{- define "email-ingest.networkpolicy" -}}
{{- $root := .root }}
{{- $values := index $root.Values .component }}
{{- if $root.Values.networkPolicy.enabled }}
{{- $np := $root.Values.networkPolicy }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "email-ingest.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "email-ingest.componentLabels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "email-ingest.selectorLabels" . | nindent 6 }}
  policyTypes:
    - Ingress
    - Egress
  {{- if eq .component "redrive" }}
  # The redrive tool serves nothing: no ingress at all.
  ingress: []
  {{- else }}
  ingress:
    {{- $from := $np.metricsFrom }}
    {{- if eq .component "api" }}{{ $from = $values.networkPolicy.from }}{{ end }}
    - ports:
        - port: http
          protocol: TCP
      {{- with $from }}
      from:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- if and (eq .component "api") $np.metricsFrom $values.networkPolicy.from }}
    # Prometheus scrapes the same port; allow it too when the API's peers are restricted.
    - ports:
        - port: http
          protocol: TCP
      from:
        {{- toYaml $np.metricsFrom | nindent 8 }}
    {{- end }}
  {{- end }}
  egress:
    - to:
        - namespaceSelector:
            matchLabels:
              {{- toYaml $np.egress.dnsNamespaceSelector | nindent 14 }}
          podSelector:
            matchLabels:
              {{- toYaml $np.egress.dnsPodSelector | nindent 14 }}
      ports:
        - port: 53
          protocol: UDP
        - port: 53
          protocol: TCP
    - to:
        {{- range $np.egress.httpsCidrs }}
        - ipBlock:
            cidr: {{ . }}
        {{- end }}
      ports:
        - port: 443
          protocol: TCP
    {{- if $root.Values.tracing.enabled }}
    # The trace collector (tracing.endpoint), wherever it runs.
    - ports:
        - port: {{ $root.Values.tracing.collectorPort }}
          protocol: TCP
    {{- end }}
{{- end }}
{{- end }}
