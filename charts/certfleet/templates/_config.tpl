{{/*
certfleet's configuration, resolved once from the values: the free-form `config` block, the
structured `secrets` / `existingSecret` values, `tls.secretName` and the Akash provider chart's
`letsEncrypt` block.

Every secret ends up in a file: a secret written inline (in `config` or in `secrets`) is moved
into the chart's Secret and replaced by its `xFile` key pointing at the mounted file, so the
ConfigMap never holds one. The only secret certfleet reads without an `xFile` form,
`storage.previousEncryptionKeys`, reaches it as an environment variable from the Secret.

"certfleet.resolved" renders JSON:
  config      the certfleet YAML config (a map)
  files       Secret key -> content, for the chart's Secret
  env         [{name, key, existing}]: environment variables read from a Secret key
  postgres    whether storage is PostgreSQL
  https       whether the API listener speaks TLS (server.tls)
  ports       {api, http01, metrics, tlsAlpn01} container ports (0 = disabled)
  tlsAlpn01OnApi  whether TLS-ALPN-01 is answered on the API's own TLS listener
*/}}

{{/*
Moves the inline secret `key` of map `m` into `files` under `name` and points `keyFile` at it.
Arguments: m, key, path (the key's place, for messages), files, name, dir.
*/}}
{{- define "certfleet.moveSecret" -}}
{{- $fileKey := printf "%sFile" .key -}}
{{- $value := index .m .key -}}
{{- if and (hasKey .m .key) (not (kindIs "invalid" $value)) (ne (toString $value) "") -}}
  {{- if index .m $fileKey -}}
    {{- fail (printf "%s and %sFile are both set; keep only one of the two" .path .path) -}}
  {{- end -}}
  {{- $_ := set .files .name (toString $value) -}}
  {{- $_ := unset .m .key -}}
  {{- $_ := set .m $fileKey (printf "%s/%s" .dir .name) -}}
{{- else if hasKey .m .key -}}
  {{- $_ := unset .m .key -}}
{{- end -}}
{{- end -}}

{{/*
Points `keyFile` of map `m` at a secret that comes from elsewhere (the `secrets` values, the
existing Secret, the letsEncrypt block). Fails when `config` already sets that secret.
Arguments: m, key, path, from (where the other value comes from), file.
*/}}
{{- define "certfleet.pointSecret" -}}
{{- $fileKey := printf "%sFile" .key -}}
{{- if or (index .m .key) (index .m $fileKey) -}}
  {{- fail (printf "%s is set twice: in config (%s or %sFile) and by %s; keep only one" .path .path .path .from) -}}
{{- end -}}
{{- $_ := set .m $fileKey .file -}}
{{- end -}}

{{/* A map inside `m` under `key`, created when missing; fails when it is not a map. */}}
{{- define "certfleet.ensureMap" -}}
{{- $value := index .m .key -}}
{{- if kindIs "invalid" $value -}}
  {{- $_ := set .m .key dict -}}
{{- else if not (kindIs "map" $value) -}}
  {{- fail (printf "%s: must be a map, not %s" .path (kindOf $value)) -}}
{{- end -}}
{{- end -}}

{{- define "certfleet.resolved" -}}
{{- $v := .Values -}}
{{- $dir := include "certfleet.secretsDir" . -}}
{{- $existingDir := include "certfleet.existingSecretDir" . -}}
{{- $files := dict -}}
{{- $env := list -}}
{{- $cfg := deepCopy (default dict $v.config) -}}
{{- if not (kindIs "map" $cfg) -}}
  {{- fail "config: must be a map of certfleet configuration keys (see config.example.yaml)" -}}
{{- end -}}
{{- range $section := list "server" "storage" "acme" "challenges" "auth" -}}
  {{- include "certfleet.ensureMap" (dict "m" $cfg "key" $section "path" (printf "config.%s" $section)) -}}
{{- end -}}
{{- $secrets := default dict $v.secrets -}}
{{- $existing := default dict $v.existingSecret -}}
{{- $existingKeys := dict -}}
{{- if $existing.name -}}
  {{- $existingKeys = default dict $existing.keys -}}
{{- else -}}
  {{- range $k, $key := (default dict $existing.keys) -}}
    {{- if $key -}}
      {{- fail (printf "existingSecret.keys.%s is set but existingSecret.name is empty: name the Secret that holds it" $k) -}}
    {{- end -}}
  {{- end -}}
{{- end -}}

{{- /* ---------------------------------------------------------------- listeners */ -}}
{{- $ports := default dict $v.containerPorts -}}
{{- $apiPort := int (default 8443 $ports.api) -}}
{{- $http01Port := int (default 8080 $ports.http01) -}}
{{- $metricsPort := int (default 9090 $ports.metrics) -}}
{{- $le := default dict $v.letsEncrypt -}}
{{- $leAcme := default dict $le.acme -}}
{{- if and $le.enabled $leAcme.httpChallengePort -}}
  {{- $http01Port = int $leAcme.httpChallengePort -}}
{{- end -}}
{{- if not (default dict $v.metrics).enabled -}}
  {{- $metricsPort = 0 -}}
{{- end -}}
{{- $server := $cfg.server -}}
{{- $forced := dict "listen" (printf "0.0.0.0:%d" $apiPort) "metricsListen" (ternary (printf "0.0.0.0:%d" $metricsPort) "" (gt $metricsPort 0)) -}}
{{- range $key, $want := $forced -}}
  {{- if and (hasKey $server $key) (ne (toString (index $server $key)) $want) -}}
    {{- fail (printf "config.server.%s is set by the chart (%s, from containerPorts and metrics.enabled) so that probes, ports and the Service match; remove it from config and change containerPorts or metrics.enabled instead" $key $want) -}}
  {{- end -}}
  {{- $_ := set $server $key $want -}}
{{- end -}}
{{- $challenges := $cfg.challenges -}}
{{- include "certfleet.ensureMap" (dict "m" $challenges "key" "http01" "path" "config.challenges.http01") -}}
{{- $http01Listen := printf "0.0.0.0:%d" $http01Port -}}
{{- if and (hasKey $challenges.http01 "listen") (ne (toString $challenges.http01.listen) $http01Listen) -}}
  {{- fail (printf "config.challenges.http01.listen is set by the chart (%s, from containerPorts.http01 or letsEncrypt.acme.httpChallengePort); remove it from config" $http01Listen) -}}
{{- end -}}
{{- $_ := set $challenges.http01 "listen" $http01Listen -}}
{{- $tlsAlpn01Port := int (default 0 $ports.tlsAlpn01) -}}
{{- if gt $tlsAlpn01Port 0 -}}
  {{- include "certfleet.ensureMap" (dict "m" $challenges "key" "tlsAlpn01" "path" "config.challenges.tlsAlpn01") -}}
  {{- $tlsAlpn01Listen := printf "0.0.0.0:%d" $tlsAlpn01Port -}}
  {{- if and (hasKey $challenges.tlsAlpn01 "listen") (ne (toString $challenges.tlsAlpn01.listen) $tlsAlpn01Listen) -}}
    {{- fail (printf "config.challenges.tlsAlpn01.listen is set by the chart (%s, from containerPorts.tlsAlpn01); remove it from config" $tlsAlpn01Listen) -}}
  {{- end -}}
  {{- $_ := set $challenges.tlsAlpn01 "listen" $tlsAlpn01Listen -}}
{{- else if hasKey $challenges "tlsAlpn01" -}}
  {{- fail "config.challenges.tlsAlpn01 needs a port the pod and the Service open: set containerPorts.tlsAlpn01 (the chart then sets challenges.tlsAlpn01.listen)" -}}
{{- end -}}
{{- $tlsAlpn01OnApi := and (gt $tlsAlpn01Port 0) (eq $tlsAlpn01Port $apiPort) -}}

{{- /* ---------------------------------------------------------------- server.tls */ -}}
{{- $tlsValues := default dict $v.tls -}}
{{- if $tlsValues.secretName -}}
  {{- if index $server "tls" -}}
    {{- fail "server.tls is set twice: in config.server.tls and by tls.secretName; keep only one" -}}
  {{- end -}}
  {{- $tlsDir := include "certfleet.tlsDir" . -}}
  {{- $_ := set $server "tls" (dict "certFile" (printf "%s/tls.crt" $tlsDir) "keyFile" (printf "%s/tls.key" $tlsDir)) -}}
{{- end -}}
{{- $https := not (empty (index $server "tls")) -}}

{{- /* ---------------------------------------------------------------- storage */ -}}
{{- $storage := $cfg.storage -}}
{{- $urlSources := list -}}
{{- if index $storage "url" }}{{ $urlSources = append $urlSources "config.storage.url" }}{{ end -}}
{{- if index $storage "urlFile" }}{{ $urlSources = append $urlSources "config.storage.urlFile" }}{{ end -}}
{{- if $secrets.databaseUrl }}{{ $urlSources = append $urlSources "secrets.databaseUrl" }}{{ end -}}
{{- if $existingKeys.databaseUrl }}{{ $urlSources = append $urlSources "existingSecret.keys.databaseUrl" }}{{ end -}}
{{- if gt (len $urlSources) 1 -}}
  {{- fail (printf "the database URL is set more than once (%s); keep only one" (join ", " $urlSources)) -}}
{{- end -}}
{{- $postgresScheme := "^postgres(ql)?://" -}}
{{- $postgres := false -}}
{{- if $secrets.databaseUrl -}}
  {{- $_ := set $storage "url" (toString $secrets.databaseUrl) -}}
{{- end -}}
{{- if index $storage "url" -}}
  {{- if regexMatch $postgresScheme (toString $storage.url) -}}
    {{- $postgres = true -}}
    {{- include "certfleet.moveSecret" (dict "m" $storage "key" "url" "path" "storage.url" "files" $files "name" "database-url" "dir" $dir) -}}
  {{- end -}}
{{- else if index $storage "urlFile" -}}
  {{- /* A URL kept in a file is a secret: only a PostgreSQL URL carries one. */ -}}
  {{- $postgres = true -}}
{{- else if $existingKeys.databaseUrl -}}
  {{- $postgres = true -}}
  {{- $_ := set $storage "urlFile" (printf "%s/%s" $existingDir $existingKeys.databaseUrl) -}}
{{- else -}}
  {{- $mount := (default dict $v.persistence).mountPath | default "/var/lib/certfleet" -}}
  {{- $_ := set $storage "url" (printf "sqlite://%s/certfleet.db" $mount) -}}
{{- end -}}
{{- if and (gt (int $v.replicaCount) 1) (not $postgres) -}}
  {{- fail (printf "replicaCount: %d replicas cannot share a SQLite database; use PostgreSQL: storage.url: postgres://USER:PASSWORD@HOST:5432/DB (set it as secrets.databaseUrl, config.storage.url or existingSecret.keys.databaseUrl) with an encryption key shared by every replica, see docs/high-availability.md and docs/postgresql.md; or set replicaCount: 1" (int $v.replicaCount)) -}}
{{- end -}}

{{- /* encryption key: config, secrets.encryptionKey or the existing Secret */ -}}
{{- include "certfleet.moveSecret" (dict "m" $storage "key" "encryptionKey" "path" "storage.encryptionKey" "files" $files "name" "encryption-key" "dir" $dir) -}}
{{- if $secrets.encryptionKey -}}
  {{- include "certfleet.pointSecret" (dict "m" $storage "key" "encryptionKey" "path" "storage.encryptionKey" "from" "secrets.encryptionKey" "file" (printf "%s/encryption-key" $dir)) -}}
  {{- $_ := set $files "encryption-key" (toString $secrets.encryptionKey) -}}
{{- end -}}
{{- if $existingKeys.encryptionKey -}}
  {{- include "certfleet.pointSecret" (dict "m" $storage "key" "encryptionKey" "path" "storage.encryptionKey" "from" "existingSecret.keys.encryptionKey" "file" (printf "%s/%s" $existingDir $existingKeys.encryptionKey)) -}}
{{- end -}}
{{- if and $postgres (not (index $storage "encryptionKeyFile")) -}}
  {{- fail "storage.encryptionKey is required with PostgreSQL: every replica seals and opens private keys with the same key. Generate one with `openssl rand -base64 32` and set secrets.encryptionKey (or config.storage.encryptionKey), or name the key holding it in an existing Secret with existingSecret.name + existingSecret.keys.encryptionKey; see docs/postgresql.md" -}}
{{- end -}}

{{- /* previous encryption keys: no file form in certfleet, so an environment variable from the Secret */ -}}
{{- $previous := list -}}
{{- if index $storage "previousEncryptionKeys" -}}
  {{- $previous = concat $previous $storage.previousEncryptionKeys -}}
{{- end -}}
{{- $_ := unset $storage "previousEncryptionKeys" -}}
{{- if $secrets.previousEncryptionKeys -}}
  {{- $previous = concat $previous $secrets.previousEncryptionKeys -}}
{{- end -}}
{{- if and $previous $existingKeys.previousEncryptionKeys -}}
  {{- fail "storage.previousEncryptionKeys is set twice: in config or secrets.previousEncryptionKeys, and by existingSecret.keys.previousEncryptionKeys; keep only one" -}}
{{- end -}}
{{- if $previous -}}
  {{- $_ := set $files "previous-encryption-keys" (join "," $previous) -}}
  {{- $env = append $env (dict "name" "CERTFLEET_STORAGE__PREVIOUS_ENCRYPTION_KEYS" "key" "previous-encryption-keys" "existing" false) -}}
{{- else if $existingKeys.previousEncryptionKeys -}}
  {{- $env = append $env (dict "name" "CERTFLEET_STORAGE__PREVIOUS_ENCRYPTION_KEYS" "key" $existingKeys.previousEncryptionKeys "existing" true) -}}
{{- end -}}

{{- /* ---------------------------------------------------------------- acme */ -}}
{{- $acme := $cfg.acme -}}
{{- if index $acme "eab" -}}
  {{- include "certfleet.ensureMap" (dict "m" $acme "key" "eab" "path" "config.acme.eab") -}}
  {{- include "certfleet.moveSecret" (dict "m" $acme.eab "key" "hmacKey" "path" "acme.eab.hmacKey" "files" $files "name" "eab-hmac-key" "dir" $dir) -}}
{{- end -}}
{{- range $pair := list (list "secrets.eabHmacKey" $secrets.eabHmacKey "") (list "existingSecret.keys.eabHmacKey" "" $existingKeys.eabHmacKey) -}}
  {{- $from := index $pair 0 }}{{ $content := index $pair 1 }}{{ $existingKey := index $pair 2 -}}
  {{- if or $content $existingKey -}}
    {{- include "certfleet.ensureMap" (dict "m" $acme "key" "eab" "path" "config.acme.eab") -}}
    {{- $file := ternary (printf "%s/eab-hmac-key" $dir) (printf "%s/%s" $existingDir $existingKey) (not (empty $content)) -}}
    {{- include "certfleet.pointSecret" (dict "m" $acme.eab "key" "hmacKey" "path" "acme.eab.hmacKey" "from" $from "file" $file) -}}
    {{- if $content }}{{ $_ := set $files "eab-hmac-key" (toString $content) }}{{ end -}}
  {{- end -}}
{{- end -}}

{{- /* ---------------------------------------------------------------- auth */ -}}
{{- $auth := $cfg.auth -}}
{{- if or (index $auth "psk") $secrets.pskKey $existingKeys.pskKey -}}
  {{- include "certfleet.ensureMap" (dict "m" $auth "key" "psk" "path" "config.auth.psk") -}}
  {{- $psk := $auth.psk -}}
  {{- include "certfleet.moveSecret" (dict "m" $psk "key" "key" "path" "auth.psk.key" "files" $files "name" "psk-key" "dir" $dir) -}}
  {{- if $secrets.pskKey -}}
    {{- include "certfleet.pointSecret" (dict "m" $psk "key" "key" "path" "auth.psk.key" "from" "secrets.pskKey" "file" (printf "%s/psk-key" $dir)) -}}
    {{- $_ := set $files "psk-key" (toString $secrets.pskKey) -}}
  {{- end -}}
  {{- if $existingKeys.pskKey -}}
    {{- include "certfleet.pointSecret" (dict "m" $psk "key" "key" "path" "auth.psk.key" "from" "existingSecret.keys.pskKey" "file" (printf "%s/%s" $existingDir $existingKeys.pskKey)) -}}
  {{- end -}}
  {{- range $i, $entry := (default list (index $psk "keys")) -}}
    {{- if not (kindIs "map" $entry) }}{{ fail (printf "config.auth.psk.keys[%d]: must be a map (name, key, domains)" $i) }}{{ end -}}
    {{- include "certfleet.moveSecret" (dict "m" $entry "key" "key" "path" (printf "auth.psk.keys[%d].key" $i) "files" $files "name" (printf "psk-keys-%d" $i) "dir" $dir) -}}
  {{- end -}}
{{- end -}}

{{- /* ---------------------------------------------------------------- challenges.dns01 */ -}}
{{- $dns01 := default list (index $challenges "dns01") -}}
{{- if not (kindIs "slice" $dns01) }}{{ fail "config.challenges.dns01: must be a list of providers (docs/dns-providers.md)" }}{{ end -}}
{{- range $i, $entry := $dns01 -}}
  {{- if not (kindIs "map" $entry) }}{{ fail (printf "config.challenges.dns01[%d]: must be a map with a provider key" $i) }}{{ end -}}
  {{- include "certfleet.moveSecret" (dict "m" $entry "key" "apiToken" "path" (printf "challenges.dns01[%d].apiToken" $i) "files" $files "name" (printf "dns01-%d-api-token" $i) "dir" $dir) -}}
  {{- include "certfleet.moveSecret" (dict "m" $entry "key" "serviceAccount" "path" (printf "challenges.dns01[%d].serviceAccount" $i) "files" $files "name" (printf "dns01-%d-service-account.json" $i) "dir" $dir) -}}
  {{- include "certfleet.moveSecret" (dict "m" $entry "key" "tsigSecret" "path" (printf "challenges.dns01[%d].tsigSecret" $i) "files" $files "name" (printf "dns01-%d-tsig-secret" $i) "dir" $dir) -}}
{{- end -}}

{{- /* ---------------------------------------------------------------- letsEncrypt (Akash provider chart) */ -}}
{{- if $le.enabled -}}
  {{- if $leAcme.caDirUrl -}}
    {{- if and (index $acme "directoryUrl") (ne (toString $acme.directoryUrl) (toString $leAcme.caDirUrl)) -}}
      {{- fail "the ACME directory is set twice, differently: config.acme.directoryUrl and letsEncrypt.acme.caDirUrl; keep only one" -}}
    {{- end -}}
    {{- $_ := set $acme "directoryUrl" (toString $leAcme.caDirUrl) -}}
  {{- end -}}
  {{- $email := $leAcme.email | default $v.email -}}
  {{- if and $email (not (index $acme "email")) -}}
    {{- $_ := set $acme "email" (toString $email) -}}
  {{- end -}}
  {{- $eab := default dict $leAcme.externalAccountBinding -}}
  {{- if or $eab.kid $eab.hmac -}}
    {{- if not (and $eab.kid $eab.hmac) -}}
      {{- fail "letsEncrypt.acme.externalAccountBinding needs both kid and hmac (the key ID and the HMAC key your CA gave you)" -}}
    {{- end -}}
    {{- if index $acme "eab" -}}
      {{- fail "External Account Binding is set twice: in config.acme.eab (or secrets.eabHmacKey / existingSecret.keys.eabHmacKey) and in letsEncrypt.acme.externalAccountBinding; keep only one" -}}
    {{- end -}}
    {{- $_ := set $files "letsencrypt-eab-hmac-key" (toString $eab.hmac) -}}
    {{- $_ := set $acme "eab" (dict "kid" (toString $eab.kid) "hmacKeyFile" (printf "%s/letsencrypt-eab-hmac-key" $dir)) -}}
  {{- end -}}
  {{- $leProviders := default dict $le.providers -}}
  {{- $cf := default dict $leProviders.cloudflare -}}
  {{- $gc := default dict $leProviders.googleCloud -}}
  {{- $order := list -}}
  {{- range $name := (default list (default dict $le.dns).providers) -}}
    {{- $n := lower (toString $name) -}}
    {{- $canonical := "" -}}
    {{- if has $n (list "cf" "cloudflare") }}{{ $canonical = "cloudflare" -}}
    {{- else if has $n (list "gcloud" "googlecloud" "google") }}{{ $canonical = "gcloud" -}}
    {{- else }}{{ fail (printf "letsEncrypt.dns.providers: %q is not a provider this chart maps; use cf (Cloudflare) or gcloud (Google Cloud DNS), or configure other providers (rfc2136) under config.challenges.dns01" $name) }}{{ end -}}
    {{- if not (has $canonical $order) }}{{ $order = append $order $canonical }}{{ end -}}
  {{- end -}}
  {{- if and $cf.enabled (not (has "cloudflare" $order)) }}{{ $order = append $order "cloudflare" }}{{ end -}}
  {{- if and $gc.enabled (not (has "gcloud" $order)) }}{{ $order = append $order "gcloud" }}{{ end -}}
  {{- range $provider := $order -}}
    {{- if eq $provider "cloudflare" -}}
      {{- if not $cf.apiToken -}}
        {{- fail "letsEncrypt: Cloudflare is selected (letsEncrypt.dns.providers: [cf] or letsEncrypt.providers.cloudflare.enabled) but letsEncrypt.providers.cloudflare.apiToken is empty; set an API token with Zone.DNS Edit and Zone.Zone Read (docs/dns-providers.md)" -}}
      {{- end -}}
      {{- $_ := set $files "letsencrypt-cloudflare-api-token" (toString $cf.apiToken) -}}
      {{- $entry := dict "provider" "cloudflare" "apiTokenFile" (printf "%s/letsencrypt-cloudflare-api-token" $dir) -}}
      {{- if $cf.zones }}{{ $_ := set $entry "zones" $cf.zones }}{{ end -}}
      {{- $dns01 = append $dns01 $entry -}}
    {{- else -}}
      {{- $sa := default dict $gc.serviceAccount -}}
      {{- $entry := dict "provider" "gcloud" -}}
      {{- if $sa.content -}}
        {{- $_ := set $files "letsencrypt-gcloud-service-account.json" (toString $sa.content) -}}
        {{- $_ := set $entry "serviceAccountFile" (printf "%s/letsencrypt-gcloud-service-account.json" $dir) -}}
      {{- else if $sa.file -}}
        {{- fail (printf "letsEncrypt.providers.googleCloud.serviceAccount.file (%s) names a file inside the Akash chart, which this chart cannot read; pass the key's content instead: --set-file letsEncrypt.providers.googleCloud.serviceAccount.content=%s" $sa.file $sa.file) -}}
      {{- end -}}
      {{- if $gc.project }}{{ $_ := set $entry "project" (toString $gc.project) }}{{ end -}}
      {{- if $gc.zones }}{{ $_ := set $entry "zones" $gc.zones }}{{ end -}}
      {{- $dns01 = append $dns01 $entry -}}
    {{- end -}}
  {{- end -}}
{{- end -}}
{{- if $dns01 -}}
  {{- $_ := set $challenges "dns01" $dns01 -}}
{{- end -}}

{{- /* ---------------------------------------------------------------- tidy */ -}}
{{- range $section := list "server" "storage" "acme" "challenges" "auth" -}}
  {{- if empty (index $cfg $section) }}{{ $_ := unset $cfg $section }}{{ end -}}
{{- end -}}
{{- if and $tlsAlpn01OnApi (not $https) -}}
  {{- fail "containerPorts.tlsAlpn01 is the API's port, where TLS-ALPN-01 is answered only over the API's own TLS: set tls.secretName (server.tls), or give TLS-ALPN-01 a port of its own" -}}
{{- end -}}
{{- $portsOut := dict "api" $apiPort "http01" $http01Port "metrics" $metricsPort "tlsAlpn01" (ternary 0 $tlsAlpn01Port $tlsAlpn01OnApi) -}}
{{- toJson (dict "config" $cfg "files" $files "env" $env "postgres" $postgres "https" $https "ports" $portsOut "tlsAlpn01OnApi" $tlsAlpn01OnApi) -}}
{{- end -}}
