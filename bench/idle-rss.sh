#!/usr/bin/env bash
# Idle memory of the real binary: starts `target/release/certfleet serve` with a minimal config
# (SQLite in a temporary directory, one PSK, loopback ports, an ACME directory that points
# nowhere), waits for /readyz, lets it settle 2 s, and reads VmRSS of that process.
# Prints `RESULT binary_idle_rss_mib <MiB> target < 20 PASS|BELOW TARGET`.
# Expects the release binary to be built (bench/run.sh does that); CERTFLEET_BIN overrides it.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${CERTFLEET_BIN:-target/release/certfleet}
target_mib=20
[ -x "$bin" ] || { echo "idle-rss: $bin is missing: run cargo build --release first" >&2; exit 1; }
command -v curl >/dev/null || { echo "idle-rss: curl is missing: run CERTFLEET_BENCH_DEPS=1 scripts/install-test-deps.sh" >&2; exit 1; }

dir=$(mktemp -d -t certfleet-bench-rss-XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

# Two loopback ports that were free a moment ago.
read -r api_port http01_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')

cat >"$dir/config.yaml" <<YAML
server:
  listen: "127.0.0.1:$api_port"
storage:
  url: "sqlite://$dir/certfleet.db"
acme:
  directoryUrl: "https://127.0.0.1:9/dir"
challenges:
  http01:
    listen: "127.0.0.1:$http01_port"
auth:
  psk:
    keys:
      - name: bench
        key: "bench-fleet-key-0123456789abcdef0123456789abcdef"
YAML

"$bin" --config "$dir/config.yaml" serve >"$dir/certfleet.log" 2>&1 &
pid=$!

ready=0
for _ in $(seq 1 100); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "idle-rss: certfleet exited during start-up:" >&2
    cat "$dir/certfleet.log" >&2
    exit 1
  fi
  if curl -fsS -o /dev/null "http://127.0.0.1:$api_port/readyz"; then
    ready=1
    break
  fi
  sleep 0.1
done
if [ "$ready" != 1 ]; then
  echo "idle-rss: /readyz did not answer within 10 s:" >&2
  cat "$dir/certfleet.log" >&2
  exit 1
fi

sleep 2
rss_kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
hwm_kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
threads=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status")
echo "idle memory: $bin serve (pid $pid, $threads threads), idle 2 s after /readyz"
awk -v rss="$rss_kb" -v hwm="$hwm_kb" -v t="$target_mib" 'BEGIN {
  mib = rss / 1024
  printf "  VmRSS %d kB (peak VmHWM %d kB)\n", rss, hwm
  printf "RESULT binary_idle_rss_mib %.1f target < %d %s\n", mib, t, (mib < t ? "PASS" : "BELOW TARGET")
}'
