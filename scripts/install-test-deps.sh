#!/usr/bin/env bash
# Installs the real components certfleet's tests and demo run against (Debian packages):
# Pebble and pebble-challtestsrv (ACME CA), BIND (RFC 2136 DNS-01 tests), openssl (demo), wrk and certbot (benchmarks),
# PostgreSQL (tests/it/store_story.rs and the replica tests start their own server from its binaries),
# Chromium and chromedriver (the dashboard's browser tests),
# Debian trixie's pebble 2.6 (ARI tests) and forky's 2.10 (the 2026 ACME features), and forky's
# caddy 2.11 (tests/it/servers.rs), unpacked under target/test-tools;
# the npm packages of the tests' OpenID provider (tests/oidc) and Akash SDK (tests/akash); and
# the PyPI packages of the notification tests (tests/notify: aiosmtpd, a real SMTP server, and
# standardwebhooks, the webhook signature check), installed with pip under target/test-tools.
# Idempotent: installs only what is missing. Needs root (or sudo) for apt-get.
set -euo pipefail

# The demo (scripts/demo.sh) needs only Pebble, openssl and curl.
if [ "${CERTFLEET_DEMO_DEPS:-0}" = 1 ]; then
  need=()
  for tool in pebble openssl curl; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
  if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    echo "installing: ${need[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  exit 0
fi

# The OpenID provider tests/it/oidc.rs starts: npm oidc-provider, pinned in tests/oidc's
# package-lock.json, run with the machine's node (20+).
oidc_dir="$(cd "$(dirname "$0")/../tests/oidc" && pwd)"
if [ ! -d "$oidc_dir/node_modules" ]; then
  if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    echo "node and npm are missing: install Node.js 20+ with npm for the OIDC tests" >&2
    exit 1
  fi
  echo "installing the test OpenID provider: npm ci --prefix tests/oidc" >&2
  npm ci --prefix "$oidc_dir" --no-audit --no-fund >/dev/null
fi

# The Akash SDK tests/it/akash.rs mints provider-API tokens with: npm @akashnetwork/chain-sdk and
# CosmJS, pinned in tests/akash's package-lock.json, run with the machine's node (20+).
akash_dir="$(cd "$(dirname "$0")/../tests/akash" && pwd)"
if [ ! -d "$akash_dir/node_modules/@akashnetwork/chain-sdk" ] ||
  [ ! -d "$akash_dir/node_modules/@cosmjs/crypto" ]; then
  if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    echo "node and npm are missing: install Node.js 20+ with npm for the Akash tests" >&2
    exit 1
  fi
  echo "installing the Akash SDK for the tests: npm ci --prefix tests/akash" >&2
  npm ci --prefix "$akash_dir" --no-audit --no-fund >/dev/null 2>&1
fi

need=()
command -v pebble >/dev/null 2>&1 || need+=(pebble)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl)
# BIND for the RFC 2136 DNS-01 tests (tests/it/dns_conformance.rs, tests/it/dns01.rs start named).
[ -x /usr/sbin/named ] || need+=(bind9)
command -v tsig-keygen >/dev/null 2>&1 || need+=(bind9-utils)
command -v dig >/dev/null 2>&1 || need+=(dnsutils)
# PostgreSQL: initdb and postgres are not on PATH, they live in /usr/lib/postgresql/<version>/bin.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
# Real TLS servers for the fetch recipes (tests/it/recipes.rs): nginx, HAProxy and socat
# (the HAProxy hook talks to its runtime API).
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v socat >/dev/null 2>&1 || need+=(socat)
# Java's keytool reads the PKCS#12 files `certfleet fetch --format p12` writes (fetch_formats.rs).
command -v keytool >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
# A real browser for the dashboard's tests (tests/it/dashboard.rs drives it over WebDriver).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ "${CERTFLEET_BENCH_DEPS:-0}" = 1 ]; then
  command -v wrk >/dev/null 2>&1 || need+=(wrk)
  command -v certbot >/dev/null 2>&1 || need+=(certbot)
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Newer Pebbles from newer Debian releases, unpacked under target/test-tools with a private apt
# configuration (the system's sources are not touched); their binaries run on Debian 12:
# - 2.6 from trixie, for the ACME Renewal Information (RFC 9773) tests: bookworm's 2.4 has none;
# - 2.10 from forky, for the 2026 ACME features: profiles, IP identifiers, TLS-ALPN-01,
#   dns-persist-01, dns-account-01, ARI with alreadyReplaced (tests/it/acme2026.rs).
tools_dir="$(cd "$(dirname "$0")/.." && pwd)/target/test-tools"
unpack_pebble() { # release version
  local release=$1 version=$2 dir="$tools_dir/pebble-$2"
  [ -x "$dir/usr/bin/pebble" ] && [ -x "$dir/usr/bin/pebble-challtestsrv" ] && return 0
  echo "installing pebble $version (Debian $release) into $dir" >&2
  local apt_dir
  apt_dir=$(mktemp -d)
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $release main" \
    > "$apt_dir/sources.list"
  local apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o "Dir::Etc::sourceparts=/dev/null"
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "APT::Sandbox::User=root")
  apt-get "${apt_opts[@]}" update -qq
  (cd "$apt_dir" && apt-get "${apt_opts[@]}" download -qq pebble)
  mkdir -p "$dir"
  dpkg-deb -x "$apt_dir"/pebble_*.deb "$dir"
  rm -rf "$apt_dir"
  # Debian's builds print "dev" as their version: check that the binary runs.
  "$dir/usr/bin/pebble" -version >/dev/null
}
unpack_pebble trixie 2.6
unpack_pebble forky 2.10

# Caddy 2.11 (tests/it/servers.rs: its `get_certificate http` manager; bookworm's 2.6 predates
# what the test relies on), Debian forky's package unpacked the same way under
# target/test-tools/caddy-2.11. A single static Go binary: it runs on Debian 12.
unpack_caddy() {
  local dir="$tools_dir/caddy-2.11"
  [ -x "$dir/usr/bin/caddy" ] && return 0
  echo "installing caddy 2.11 (Debian forky) into $dir" >&2
  local apt_dir
  apt_dir=$(mktemp -d)
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian forky main" \
    > "$apt_dir/sources.list"
  local apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o "Dir::Etc::sourceparts=/dev/null"
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "APT::Sandbox::User=root")
  apt-get "${apt_opts[@]}" update -qq
  (cd "$apt_dir" && apt-get "${apt_opts[@]}" download -qq caddy)
  mkdir -p "$dir"
  dpkg-deb -x "$apt_dir"/caddy_*.deb "$dir"
  rm -rf "$apt_dir"
  "$dir/usr/bin/caddy" version | grep -Eq '^v?2\.11\.' || {
    echo "the unpacked caddy is not 2.11: $("$dir/usr/bin/caddy" version)" >&2
    exit 1
  }
}
unpack_caddy

# The notification tests' PyPI packages (tests/notify/requirements.txt: aiosmtpd, the SMTP
# server tests/it/common/smtp.rs starts, and standardwebhooks, which checks certfleet's webhook
# signatures), installed with pip under target/test-tools, where the tests put them on
# PYTHONPATH; the system's Python packages are not touched. A changed requirements.txt
# installs again (the copy beside the packages tells which one they came from).
python_dir="$(cd "$(dirname "$0")/.." && pwd)/target/test-tools/python"
requirements="$(cd "$(dirname "$0")/../tests/notify" && pwd)/requirements.txt"
if [ ! -d "$python_dir/aiosmtpd" ] || [ ! -d "$python_dir/standardwebhooks" ] ||
  ! cmp -s "$requirements" "$python_dir/requirements.txt"; then
  if ! python3 -m pip --version >/dev/null 2>&1; then
    echo "installing: python3-pip" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3 python3-pip >/dev/null
  fi
  echo "installing the notification tests' Python packages into $python_dir" >&2
  mkdir -p "$python_dir"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --upgrade \
    --target "$python_dir" -r "$requirements"
  cp "$requirements" "$python_dir/requirements.txt"
fi
