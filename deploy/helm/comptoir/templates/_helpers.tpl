{{/* A service's DNS-safe name: user_service -> user-service. */}}
{{- define "comptoir.dns" -}}
{{- replace "_" "-" . -}}
{{- end -}}

{{- define "comptoir.image" -}}
{{- $root := index . 0 -}}{{- $service := index . 1 -}}
{{- $tag := default (default $root.Chart.AppVersion $root.Values.image.tag) (index (default dict $root.Values.image.tags) $service) -}}
{{- printf "%s/%s:%s" $root.Values.image.registry $service $tag -}}
{{- end -}}

{{/* Labels of one process: (list $root $service $process) */}}
{{- define "comptoir.selectorLabels" -}}
{{- $root := index . 0 -}}{{- $service := index . 1 -}}{{- $process := index . 2 -}}
app.kubernetes.io/name: {{ include "comptoir.dns" $service }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ $process }}
{{- end -}}

{{- define "comptoir.labels" -}}
{{- $root := index . 0 -}}
{{ include "comptoir.selectorLabels" . }}
app.kubernetes.io/part-of: comptoir
app.kubernetes.io/version: {{ default $root.Chart.AppVersion $root.Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version }}
{{- end -}}

{{/* The process's command in the service image (the image's CMD is web). */}}
{{- define "comptoir.command" -}}
{{- $service := index . 0 -}}{{- $process := index . 1 -}}
{{- if eq $process "worker" -}}
["celery", "-A", "config", "--quiet", "worker", "--loglevel=INFO", "--concurrency=2", "-Q", {{ $service | quote }}, "--without-gossip", "--without-mingle"]
{{- else if eq $process "beat" -}}
["celery", "-A", "config", "--quiet", "beat", "--loglevel=INFO", "--schedule", "/tmp/celerybeat-schedule"]
{{- else if eq $process "relay" -}}
["python", "manage.py", "outbox_relay"]
{{- else if eq $process "consumer" -}}
["python", "manage.py", "consume_events"]
{{- else if eq $process "migrate" -}}
["sh", "-c", "python manage.py migrate --noinput && python manage.py create_topics"]
{{- else -}}
{{- fail (printf "unknown process %s" $process) -}}
{{- end -}}
{{- end -}}

{{/* Probes of a process without an HTTP port (`python -m comptoir.probe`).
     Liveness is "my loop turns": the heartbeat the relay's and the consumer's
     loop touch, which a broker outage does not stop (so it restarts nothing);
     a worker answers a ping. Readiness is "my dependencies answer": the checks
     that kind of process needs (relay, consumer: database and Kafka). */}}
{{- define "comptoir.execProbes" -}}
{{- $process := . -}}
{{- if eq $process "worker" }}
livenessProbe:
  exec:
    command: ["sh", "-c", "celery -A config inspect ping --timeout 10 --destination celery@$HOSTNAME > /dev/null"]
  initialDelaySeconds: 30
  periodSeconds: 60
  timeoutSeconds: 20
  failureThreshold: 3
{{- else if ne $process "beat" }}
livenessProbe:
  exec:
    command: ["python", "-m", "comptoir.probe", "live", {{ $process | quote }}]
  initialDelaySeconds: 60
  periodSeconds: 30
  timeoutSeconds: 10
  failureThreshold: 3
{{- end }}
readinessProbe:
  exec:
    command: ["python", "-m", "comptoir.probe", "ready", {{ $process | quote }}]
  periodSeconds: 30
  timeoutSeconds: 20
  failureThreshold: 2
{{- end -}}

{{/* A service's ServiceAccount name: (list $root $service) */}}
{{- define "comptoir.serviceAccountName" -}}
{{- $root := index . 0 -}}{{- $service := index . 1 -}}
{{- if $root.Values.serviceAccounts.create -}}
{{- include "comptoir.dns" $service -}}
{{- else -}}
default
{{- end -}}
{{- end -}}

{{/* The pod-level settings every pod shares: (list $root $service). No pod gets
     an API token: nothing of the platform talks to the Kubernetes API. */}}
{{- define "comptoir.podSecurity" -}}
{{- $root := index . 0 -}}{{- $service := index . 1 -}}
serviceAccountName: {{ include "comptoir.serviceAccountName" (list $root $service) }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml $root.Values.defaults.podSecurityContext | nindent 2 }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* NetworkPolicy egress rules (values: networkPolicy). */}}
{{- define "comptoir.dnsEgress" -}}
- to:
    {{- toYaml .Values.networkPolicy.dns.peers | nindent 4 }}
  ports:
    {{- toYaml .Values.networkPolicy.dns.ports | nindent 4 }}
{{- end -}}

{{- define "comptoir.redisEgress" -}}
- to:
    {{- toYaml .Values.networkPolicy.redis.peers | nindent 4 }}
  ports:
    {{- range .Values.networkPolicy.redis.ports }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
{{- end -}}

{{/* To the collector, on the port of platform.otlpEndpoint (else its protocol's). */}}
{{- define "comptoir.tracingEgress" -}}
{{- $endpoint := .Values.platform.otlpEndpoint -}}
{{- if $endpoint -}}
{{- $host := (urlParse $endpoint).host -}}
{{- $port := "" -}}
{{- if contains ":" $host }}{{ $port = last (splitList ":" $host) }}{{ end -}}
{{- if not $port }}{{ $port = ternary "4317" "4318" (eq .Values.platform.otlpProtocol "grpc") }}{{ end -}}
- to:
    {{- toYaml .Values.networkPolicy.tracing.peers | nindent 4 }}
  ports:
    - {port: {{ $port }}, protocol: TCP}
{{- end -}}
{{- end -}}

{{/* To the brokers, on the ports of platform.kafkaBootstrapServers (+ extraPorts). */}}
{{- define "comptoir.kafkaEgress" -}}
{{- $ports := list -}}
{{- range $server := splitList "," .Values.platform.kafkaBootstrapServers -}}
{{- $ports = append $ports (int (last (splitList ":" (trim $server)))) -}}
{{- end -}}
{{- range .Values.networkPolicy.kafka.extraPorts }}{{ $ports = append $ports (int .) }}{{ end -}}
- to:
    {{- toYaml .Values.networkPolicy.kafka.peers | nindent 4 }}
  ports:
    {{- range uniq $ports }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
{{- end -}}

{{/* DNS, Redis, Kafka, traces: what every process of a Django service reaches. */}}
{{- define "comptoir.commonEgress" -}}
{{ include "comptoir.dnsEgress" . }}
{{ include "comptoir.redisEgress" . }}
{{ include "comptoir.kafkaEgress" . }}
{{- with include "comptoir.tracingEgress" . }}
{{ . }}
{{- end }}
{{- end -}}

{{/* To the web pods of the services called: (list $root $calls). */}}
{{- define "comptoir.callsEgress" -}}
{{- $root := index . 0 -}}{{- $calls := index . 1 -}}
{{- range $callee := $calls }}
{{- $svc := get $root.Values.services $callee }}
{{- if not $svc }}{{ fail (printf "calls: %s is not a service of the chart" $callee) }}{{ end }}
{{- if $svc.enabled }}
- to:
    - podSelector:
        matchLabels:
          {{- include "comptoir.selectorLabels" (list $root $callee "web") | nindent 10 }}
  ports:
    - {port: 8000, protocol: TCP}
{{- end }}
{{- end }}
{{- end -}}
