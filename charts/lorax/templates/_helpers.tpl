{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "lorax.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object base name: unique per release, so two releases in one namespace never collide. */}}
{{- define "lorax.fullname" -}}
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

{{/* A suffixed name that still fits 63 characters: include "lorax.suffixed" (list $ "lb"). */}}
{{- define "lorax.suffixed" -}}
{{- $root := index . 0 -}}
{{- $suffix := index . 1 -}}
{{- printf "%s-%s" (include "lorax.fullname" $root | trunc (int (sub 62 (len $suffix))) | trimSuffix "-") $suffix -}}
{{- end -}}

{{- define "lorax.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: stable across upgrades (a Deployment selector is immutable). */}}
{{- define "lorax.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lorax.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Kubernetes recommended labels for every object. */}}
{{- define "lorax.labels" -}}
helm.sh/chart: {{ include "lorax.chart" . }}
{{ include "lorax.selectorLabels" . }}
app.kubernetes.io/version: {{ (.Values.image.tag | default .Chart.AppVersion) | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lorax
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "lorax.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "lorax.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "lorax.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* Name of the Secret holding the HF token, empty when no token is configured. */}}
{{- define "lorax.hfTokenSecretName" -}}
{{- if .Values.hfToken.existingSecret -}}
{{- .Values.hfToken.existingSecret -}}
{{- else if .Values.hfToken.value -}}
{{- include "lorax.suffixed" (list . "hf-token") -}}
{{- end -}}
{{- end -}}

{{- define "lorax.cacheClaimName" -}}
{{- default (include "lorax.suffixed" (list . "cache")) .Values.modelCache.persistentVolumeClaim.existingClaim -}}
{{- end -}}

{{/* True ("true") when the model cache is a volume only one node can mount. */}}
{{- define "lorax.cacheIsReadWriteOnce" -}}
{{- if eq .Values.modelCache.type "persistentVolumeClaim" -}}
{{- $modes := .Values.modelCache.persistentVolumeClaim.accessModes -}}
{{- if or (has "ReadWriteOnce" $modes) (has "ReadWriteOncePod" $modes) -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The launcher flags rendered from values (server.extraArgs excluded). A value left null (or "") renders no flag,
so LoRAX computes its own default. Integers go through int64 so large numbers never render as 1e+06.
Tri-state booleans render only `true`: the 0.12.1 launcher hands `--prefix-caching false` and
`--chunked-prefill false` to the shards as PREFIX_CACHING=false / CHUNKED_PREFILL=false, which they read as
bool("false") = True (files/launcher-contract.yaml, shardEnv), and an absent flag already means off.
*/}}
{{- define "lorax.valueArgs" -}}
{{- $v := .Values -}}
{{- $args := list -}}
{{- if $v.server.jsonLogs -}}{{- $args = append $args "--json-output" -}}{{- end -}}
{{- $args = concat $args (list "--model-id" $v.model.id "--num-shard" (toString (int64 $v.gpu.count)) "--hostname" $v.server.hostname) -}}
{{- $strings := list
      (list "--revision" $v.model.revision)
      (list "--source" $v.model.source)
      (list "--dtype" $v.model.dtype)
      (list "--quantize" $v.model.quantize)
      (list "--adapter-source" $v.adapters.source)
      (list "--preloaded-adapter-source" $v.adapters.preloadedSource) -}}
{{- range $strings -}}
{{- if not (empty (index . 1)) -}}{{- $args = concat $args (list (index . 0) (index . 1)) -}}{{- end -}}
{{- end -}}
{{- $ints := list
      (list "--max-input-length" $v.server.maxInputLength)
      (list "--max-total-tokens" $v.server.maxTotalTokens)
      (list "--max-batch-prefill-tokens" $v.server.maxBatchPrefillTokens)
      (list "--max-batch-total-tokens" $v.server.maxBatchTotalTokens)
      (list "--max-concurrent-requests" $v.server.maxConcurrentRequests)
      (list "--max-active-adapters" $v.adapters.maxActive)
      (list "--adapter-cycle-time-s" $v.adapters.cycleTimeSeconds) -}}
{{- range $ints -}}
{{- if not (kindIs "invalid" (index . 1)) -}}{{- $args = concat $args (list (index . 0) (toString (int64 (index . 1)))) -}}{{- end -}}
{{- end -}}
{{- $floats := list
      (list "--adapter-memory-fraction" $v.adapters.memoryFraction)
      (list "--cuda-memory-fraction" $v.server.cudaMemoryFraction) -}}
{{- range $floats -}}
{{- if not (kindIs "invalid" (index . 1)) -}}{{- $args = concat $args (list (index . 0) (toString (index . 1))) -}}{{- end -}}
{{- end -}}
{{- $switchesWhenTrue := list
      (list "--sharded" $v.server.sharded)
      (list "--eager-prefill" $v.server.eagerPrefill)
      (list "--prefix-caching" $v.server.prefixCaching)
      (list "--chunked-prefill" $v.server.chunkedPrefill) -}}
{{- range $switchesWhenTrue -}}
{{- if eq (toString (index . 1)) "true" -}}{{- $args = concat $args (list (index . 0) "true") -}}{{- end -}}
{{- end -}}
{{- if $v.server.cudaGraphs -}}{{- $args = append $args "--compile" -}}{{- end -}}
{{- if $v.model.trustRemoteCode -}}{{- $args = append $args "--trust-remote-code" -}}{{- end -}}
{{- if $v.adapters.mergeWeights -}}{{- $args = append $args "--merge-adapter-weights" -}}{{- end -}}
{{- range $v.adapters.preloaded -}}{{- $args = concat $args (list "--preloaded-adapter-ids" .) -}}{{- end -}}
{{- toYaml $args -}}
{{- end -}}

{{/* The container's full argument list: the flags from values, then server.extraArgs (validate.yaml parses both). */}}
{{- define "lorax.args" -}}
{{- concat (include "lorax.valueArgs" . | fromYamlArray) (default list .Values.server.extraArgs) | toYaml -}}
{{- end -}}

{{/*
The one probe renderer. Input: dict "probe" <timings> "method" httpGet|exec "path" <path> "port" <port>.
The exec form runs a real one-token generation with the image's python (LoRAX 0.12.1 has no /startup route).
*/}}
{{- define "lorax.probe" -}}
{{- $p := .probe -}}
{{- if eq .method "exec" -}}
exec:
  command:
    - python
    - -c
    - >-
      import json, os, sys, urllib.request as u;
      req = u.Request("http://127.0.0.1:%s/generate" % os.environ["PORT"],
      data=json.dumps({"inputs": "Who?", "parameters": {"max_new_tokens": 1}}).encode(),
      headers={"Content-Type": "application/json"});
      sys.exit(0 if "generated_text" in json.load(u.urlopen(req, timeout={{ sub $p.timeoutSeconds 5 | int64 }})) else 1)
{{- else -}}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
{{- end }}
initialDelaySeconds: {{ default 0 $p.initialDelaySeconds | int64 }}
periodSeconds: {{ $p.periodSeconds | int64 }}
timeoutSeconds: {{ $p.timeoutSeconds | int64 }}
failureThreshold: {{ $p.failureThreshold | int64 }}
{{- end -}}

{{/* The chart's own container environment: port, cache, HF token by secretKeyRef only, S3 adapter settings. */}}
{{- define "lorax.ownEnv" -}}
{{- $v := .Values -}}
{{- $tokenSecret := include "lorax.hfTokenSecretName" . -}}
- name: PORT
  value: {{ $v.server.port | int64 | quote }}
- name: HUGGINGFACE_HUB_CACHE
  value: /data
{{- if $tokenSecret }}
{{- range list "HUGGING_FACE_HUB_TOKEN" "HF_TOKEN" }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ $tokenSecret }}
      key: {{ $v.hfToken.key }}
{{- end }}
{{- end }}
{{- with $v.adapters.s3.bucket }}
- name: PREDIBASE_MODEL_BUCKET
  value: {{ . | quote }}
{{- end }}
{{- with $v.adapters.s3.region }}
- name: AWS_REGION
  value: {{ . | quote }}
- name: AWS_DEFAULT_REGION
  value: {{ . | quote }}
{{- end }}
{{- with $v.adapters.s3.endpointUrl }}
- name: S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with $v.server.logLevel }}
- name: LOG_LEVEL
  value: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* Container environment: the chart's own, then server.extraEnv (validate-runtime.yaml refuses overlaps). */}}
{{- define "lorax.env" -}}
{{ include "lorax.ownEnv" . }}
{{- with .Values.server.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* A string as one POSIX shell word: single-quoted, each ' written as '\'' (NOTES.txt commands stay copy-pastable). */}}
{{- define "lorax.shellQuote" -}}
'{{ replace "'" "'\\''" . }}'
{{- end -}}
