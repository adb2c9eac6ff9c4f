{{/*
A Kubernetes quantity ("24Gi", "500m", "1.5e9", 2147483648) as a float in base units (bytes, cores). The schema
has already refused what does not parse (k8s_schema.QUANTITY_PATTERN), so this only scales.
*/}}
{{- define "lorax.quantity" -}}
{{- if or (kindIs "float64" .) (kindIs "int" .) (kindIs "int64" .) -}}
{{- float64 . -}}
{{- else -}}
{{- $q := toString . -}}
{{- $number := regexReplaceAll "^([+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)).*$" $q "${1}" -}}
{{- $suffix := trimPrefix $number $q -}}
{{- $scale := dict "" 1.0 "m" 0.001 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "E" 1e18 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 "Ei" 1152921504606846976.0 -}}
{{- $value := float64 $number -}}
{{- if hasKey $scale $suffix -}}
{{- $value = mulf $value (index $scale $suffix) -}}
{{- else if regexMatch "^[eE][+-]?[0-9]+$" $suffix -}}
{{- $exp := int (regexReplaceAll "^([+-]?)0*([0-9])" (substr 1 (len $suffix) $suffix) "${1}${2}" | trimPrefix "+") -}}
{{- range until (int (ternary (mul -1 $exp) $exp (lt $exp 0))) -}}
{{- $value = ternary (divf $value 10) (mulf $value 10) (lt $exp 0) -}}
{{- end -}}
{{- end -}}
{{- $value -}}
{{- end -}}
{{- end -}}

{{/* A Prometheus duration ("30s", "1m30s", "500ms") in milliseconds; the schema has checked its form. */}}
{{- define "lorax.durationMs" -}}
{{- $ms := 0 -}}
{{- $unit := dict "y" 31536000000 "w" 604800000 "d" 86400000 "h" 3600000 "m" 60000 "s" 1000 "ms" 1 -}}
{{- range regexFindAll "[0-9]+(ms|y|w|d|h|m|s)" (toString .) -1 -}}
{{- $n := regexReplaceAll "[a-z]+$" . "" -}}
{{- $ms = add $ms (mul (int64 $n) (index $unit (trimPrefix $n .))) -}}
{{- end -}}
{{- $ms -}}
{{- end -}}

{{/*
Whether address ranges cover all of [lo, hi]. Input: dict "ranges" (list of "start:end", both 20-digit
zero-padded decimals, so sortAlpha orders them) "lo" "hi" (int64). Output: "true" or "".
*/}}
{{- define "lorax.covers" -}}
{{- $reach := sub (int64 .lo) 1 -}}
{{- range sortAlpha .ranges -}}
{{- $bounds := splitList ":" . -}}
{{- $start := int64 (regexReplaceAll "^0+([0-9])" (index $bounds 0) "${1}") -}}
{{- $end := int64 (regexReplaceAll "^0+([0-9])" (index $bounds 1) "${1}") -}}
{{- if and (le $start (add $reach 1)) (gt $end $reach) -}}{{- $reach = $end -}}{{- end -}}
{{- end -}}
{{- if ge $reach (int64 .hi) -}}true{{- end -}}
{{- end -}}

{{/*
The part of the address space a CIDR covers, as "start:end" for "lorax.covers": IPv4 over its 32 bits, IPv6 over
its first 16 bits (prefixes longer than /16 return nothing: they cannot add up to the public internet).
*/}}
{{- define "lorax.cidrRange" -}}
{{- $cidr := toString . -}}
{{- $ip := first (splitList "/" $cidr) -}}
{{- $bits := int64 (last (splitList "/" $cidr)) -}}
{{- $width := 16 -}}
{{- $start := 0 -}}
{{- if contains ":" $ip -}}
{{- $head := ternary "0" (first (splitList ":" $ip)) (hasPrefix ":" $ip) -}}
{{- $start = int64 (printf "0x%s" (default "0" $head)) -}}
{{- else -}}
{{- $width = 32 -}}
{{- range $octet := splitList "." $ip -}}{{- $start = add (mul $start 256) (int64 (regexReplaceAll "^0+([0-9])" $octet "${1}")) -}}{{- end -}}
{{- end -}}
{{- if le $bits (int64 $width) -}}
{{- $size := 1 -}}
{{- range until (int (sub $width $bits)) -}}{{- $size = mul $size 2 -}}{{- end -}}
{{- $start = mul (div $start $size) $size -}}
{{- printf "%020d:%020d" $start (sub (add $start $size) 1) -}}
{{- end -}}
{{- end -}}
