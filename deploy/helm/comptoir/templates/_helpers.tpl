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

{{- define "comptoir.podSecurity" -}}
{{- $root := . -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml $root.Values.defaults.podSecurityContext | nindent 2 }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
