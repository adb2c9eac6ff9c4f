{{- /*
The launcher contract (files/launcher-contract.yaml) in templates: the same file loraxkit.chart.launcher reads.
Every rule here is the contract's; this file only walks an argument list the way clap does (see the file's
`clap` section for the rules and their sources).
*/ -}}

{{- define "lorax.contract" -}}
{{- .Files.Get "files/launcher-contract.yaml" -}}
{{- end -}}

{{/*
Check one raw value against an argument's clap value parser. Input: dict "spec" "raw". Output: "" when clap
accepts it, else what is wrong. Integers are returned normalised by "lorax.clapNumber".
*/}}
{{- define "lorax.clapValueError" -}}
{{- $spec := .spec -}}
{{- $raw := toString .raw -}}
{{- $type := $spec.type -}}
{{- if eq $type "bool" -}}
{{- if not (has $raw (list "true" "false")) -}}must be true or false (exactly; clap's bool parser){{- end -}}
{{- else if eq $type "enum" -}}
{{- if not (has $raw $spec.values) -}}must be one of {{ join ", " $spec.values }} (case-sensitive){{- end -}}
{{- if and $spec.serverValues (has $raw $spec.values) (not (has $raw $spec.serverValues)) -}}passes the launcher but the shard refuses it ({{ $spec.serverSource }}); use one of {{ join ", " $spec.serverValues }}{{- end -}}
{{- else if has $type (list "u16" "u32") -}}
{{- $max := ternary "65535" "4294967295" (eq $type "u16") -}}
{{- if not (regexMatch "^[+-]?[0-9]+$" $raw) -}}must be a whole number in 0..={{ $max }}
{{- else -}}
{{- $digits := regexReplaceAll "^0+([0-9])" (trimPrefix "+" (trimPrefix "-" $raw)) "${1}" -}}
{{- if or (gt (len $digits) 10) (and (hasPrefix "-" $raw) (ne $digits "0")) (gt (int64 $digits) (int64 $max)) -}}is not in 0..={{ $max }}{{- end -}}
{{- end -}}
{{- else if has $type (list "u64" "usize") -}}
{{- $digits := regexReplaceAll "^0+([0-9])" (trimPrefix "+" $raw) "${1}" -}}
{{- if not (regexMatch "^\\+?[0-9]+$" $raw) -}}must be a whole number >= 0 (no sign, decimals or spaces)
{{- else if or (gt (len $digits) 20) (and (eq (len $digits) 20) (ne $digits "18446744073709551615") (eq (first (sortAlpha (list $digits "18446744073709551615"))) "18446744073709551615")) -}}is larger than a 64-bit unsigned integer
{{- end -}}
{{- else if eq $type "f32" -}}
{{- if not (regexMatch "(?i)^[+-]?(([0-9]+\\.?[0-9]*|\\.[0-9]+)(e[+-]?[0-9]+)?|inf|infinity|nan)$" $raw) -}}must be a decimal number
{{- else if regexMatch "(?i)(inf|nan)" $raw -}}is accepted by clap but means nothing here; give a finite number
{{- end -}}
{{- else if and $spec.values (not (has $raw $spec.values)) -}}
{{- /* Strings with a closed set on the server side (sources). */ -}}
must be one of {{ join ", " $spec.values }} ({{ $spec.valuesSource | default $spec.source }})
{{- end -}}
{{- end -}}

{{/* A clap integer value as the plain decimal Go templates can cast (no sign, no leading zeros). */}}
{{- define "lorax.clapNumber" -}}
{{- regexReplaceAll "^0+([0-9])" (trimPrefix "+" (toString .)) "${1}" -}}
{{- end -}}

{{/* Where a token comes from, for messages: an extraArgs item, or a flag the chart renders from a value. */}}
{{- define "lorax.clapWhere" -}}
{{- if ge (int .i) (int .offset) -}}
server.extraArgs[{{ sub .i .offset }}] ({{ .token | quote }})
{{- else -}}
the chart's rendered flag {{ .token | quote }}
{{- end -}}
{{- end -}}

{{/*
Parse an argument list like the pinned launcher's clap parser and refuse, with `fail`, anything clap would
refuse, plus the flags the chart does not take from server.extraArgs. Input: dict "contract" "args" (list)
"offset" (index of the first server.extraArgs item). Output: YAML map argument name -> value (a list for
repeated arguments); switches map to true.
*/}}
{{- define "lorax.clapParse" -}}
{{- $c := .contract -}}
{{- $offset := int .offset -}}
{{- $shorts := dict -}}
{{- range $name, $spec := $c.args -}}
{{- with $spec.short -}}{{- $_ := set $shorts . $name -}}{{- end -}}
{{- end -}}
{{- $parsed := dict -}}
{{- $from := dict -}}
{{- $pending := "" -}}
{{- $pendingAt := 0 -}}
{{- $trailing := false -}}
{{- range $i, $raw := .args -}}
{{- $token := toString $raw -}}
{{- $where := include "lorax.clapWhere" (dict "i" $i "offset" $offset "token" $token) -}}
{{- $looksLikeFlag := and (hasPrefix "-" $token) (gt (len $token) 1) -}}
{{- $name := "" -}}
{{- $value := "" -}}
{{- $hasValue := false -}}
{{- if $pending -}}
{{- if $looksLikeFlag -}}
{{- if and (not (hasPrefix "--" $token)) (not (hasKey $shorts (substr 1 2 $token))) -}}
{{- fail (printf "%s: lorax-launcher would exit: unexpected argument '%s' (clap reads a leading '-' as a flag, so negative numbers are refused). Remove it." $where (substr 0 2 $token)) -}}
{{- end -}}
{{- fail (printf "%s: lorax-launcher would exit: a value is required for '--%s' but the next item is the flag %s. Give --%s a value (a separate item, or --%s=VALUE)." (include "lorax.clapWhere" (dict "i" $pendingAt "offset" $offset "token" (printf "--%s" $pending))) $pending $token $pending $pending) -}}
{{- end -}}
{{- $name = $pending -}}
{{- $value = $token -}}
{{- $hasValue = true -}}
{{- $pending = "" -}}
{{- else if $trailing -}}
{{- fail (printf "%s: lorax-launcher would exit: unexpected argument after '--' (the launcher takes no positional arguments). Remove it." $where) -}}
{{- else if eq $token "--" -}}
{{- $trailing = true -}}
{{- else if hasPrefix "--" $token -}}
{{- $body := trimPrefix "--" $token -}}
{{- $hasEquals := contains "=" $body -}}
{{- $attached := ternary (regexReplaceAll "(?s)^[^=]*=" $body "") "" $hasEquals -}}
{{- $name = ternary (regexReplaceAll "(?s)=.*$" $body "") $body $hasEquals -}}
{{- $spec := index $c.args $name -}}
{{- if not $spec -}}
{{- $hint := "Check the spelling against `lorax-launcher --help` of LoRAX 0.12.1 (charts/lorax/files/launcher-contract.yaml lists every argument)." -}}
{{- if contains " " $name -}}
{{- $hint = printf "One list item is one argument: write it as two items, %s and %s, or as %s." (first (splitList " " $token) | quote) (rest (splitList " " $token) | join " " | quote) (printf "%s=%s" (first (splitList " " $token)) (rest (splitList " " $token) | join " ") | quote) -}}
{{- else if hasKey $c.tagDependent.laterFlags $name -}}
{{- $hint = printf "--%s %s." $name (index $c.tagDependent.laterFlags $name) -}}
{{- end -}}
{{- fail (printf "%s: lorax-launcher %s would exit: unexpected argument '--%s'. %s" $where $c.image.tag $name $hint) -}}
{{- end -}}
{{- if and (ge $i $offset) (ne $spec.extraArgs "allowed") -}}
{{- $instead := ternary (printf "set %s instead" $spec.value) (trimPrefix "refused: " $spec.extraArgs) (empty (trimPrefix "refused" $spec.extraArgs)) -}}
{{- fail (printf "%s: --%s is not taken from server.extraArgs: %s." $where $name $instead) -}}
{{- end -}}
{{- if eq $spec.kind "switch" -}}
{{- if $hasEquals -}}
{{- fail (printf "%s: lorax-launcher would exit: --%s is a switch and takes no value ('%s' given). Write %s alone (or leave it out to keep it off)." $where $name $attached (printf "--%s" $name | quote)) -}}
{{- end -}}
{{- $value = "true" -}}
{{- $hasValue = true -}}
{{- else if $hasEquals -}}
{{- $value = $attached -}}
{{- $hasValue = true -}}
{{- else -}}
{{- $pending = $name -}}
{{- $pendingAt = $i -}}
{{- end -}}
{{- else if $looksLikeFlag -}}
{{- $letter := substr 1 2 $token -}}
{{- if not (hasKey $shorts $letter) -}}
{{- fail (printf "%s: lorax-launcher would exit: unexpected argument '-%s'." $where $letter) -}}
{{- end -}}
{{- $name = index $shorts $letter -}}
{{- $spec := index $c.args $name -}}
{{- if and (ge $i $offset) (ne $spec.extraArgs "allowed") -}}
{{- fail (printf "%s: -%s (--%s) is not taken from server.extraArgs: %s." $where $letter $name (trimPrefix "refused: " $spec.extraArgs)) -}}
{{- end -}}
{{- $attached := trimPrefix "=" (substr 2 (len $token) $token) -}}
{{- if eq $spec.kind "switch" -}}
{{- if gt (len $token) 2 -}}
{{- fail (printf "%s: write -%s as an item of its own (short switches are not combined here)." $where $letter) -}}
{{- end -}}
{{- $value = "true" -}}
{{- $hasValue = true -}}
{{- else if $attached -}}
{{- $value = $attached -}}
{{- $hasValue = true -}}
{{- else -}}
{{- $pending = $name -}}
{{- $pendingAt = $i -}}
{{- end -}}
{{- else -}}
{{- fail (printf "%s: lorax-launcher would exit: unexpected argument '%s' (the launcher takes no positional arguments; a value belongs right after its flag)." $where $token) -}}
{{- end -}}
{{- if $hasValue -}}
{{- $spec := index $c.args $name -}}
{{- $problem := include "lorax.clapValueError" (dict "spec" $spec "raw" $value) -}}
{{- if $problem -}}
{{- fail (printf "%s: lorax-launcher would exit: value %s for --%s %s." $where ($value | quote) $name $problem) -}}
{{- end -}}
{{- if has $spec.type (list "u16" "u32" "u64" "usize") -}}{{- $value = include "lorax.clapNumber" $value -}}{{- end -}}
{{- if eq $spec.kind "repeated" -}}
{{- $_ := set $parsed $name (append (default list (index $parsed $name)) $value) -}}
{{- else if hasKey $parsed $name -}}
{{- $first := index $from $name -}}
{{- if lt (int $first) $offset -}}
{{- fail (printf "%s: lorax-launcher would exit: --%s is already rendered by the chart from %s (clap refuses a repeated argument). Set %s instead." $where $name $spec.value $spec.value) -}}
{{- end -}}
{{- fail (printf "%s: lorax-launcher would exit: --%s is given twice (clap refuses a repeated argument). Keep one." $where $name) -}}
{{- else -}}
{{- $_ := set $parsed $name $value -}}
{{- $_ := set $from $name $i -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $pending -}}
{{- fail (printf "%s: lorax-launcher would exit: a value is required for '--%s' but none was supplied. Add its value as the next item (or write --%s=VALUE)." (include "lorax.clapWhere" (dict "i" $pendingAt "offset" $offset "token" (printf "--%s" $pending))) $pending $pending) -}}
{{- end -}}
{{- toYaml $parsed -}}
{{- end -}}
