#!/usr/bin/env bash
# Installs the real components certfleet's tests and demo run against (Debian packages):
# Pebble and pebble-challtestsrv (ACME CA), openssl (demo), wrk and certbot (benchmarks).
# Idempotent: installs only what is missing. Needs root (or sudo) for apt-get.
set -euo pipefail

need=()
command -v pebble >/dev/null 2>&1 || need+=(pebble)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ "${CERTFLEET_BENCH_DEPS:-0}" = 1 ]; then
  command -v wrk >/dev/null 2>&1 || need+=(wrk)
  command -v certbot >/dev/null 2>&1 || need+=(certbot)
fi
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "installing: ${need[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
