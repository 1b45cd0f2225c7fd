#!/usr/bin/env bash
# certfleet's benchmarks, end to end: installs what they need, builds release, runs
#   - benches/fetch.rs     cached certificate fetch vs a bare axum handler (wrk), with text and
#                          then JSON logging, and the split of one fetch per layer,
#   - benches/issuance.rs  issuance vs certbot, 20 and 100 in parallel vs one (real Pebble),
#   - benches/scale.rs     100,000 stored certificates in SQLite and PostgreSQL: start-up, memory,
#                          /metrics scrapes, every certificate fetched once, the renewal scan,
#   - benches/renewal_scan.rs  the renewal scan over 100,000 stored certificates,
#   - benches/auth.rs, benches/akash.rs  cached fetch with an OIDC / Akash token vs a PSK,
#   - benches/watch.rs     1,000 clients waiting on one server: memory per waiter, wake-up time,
#   - bench/idle-rss.sh    idle memory of the real `certfleet serve` binary,
# then prints every ratio against its target. Speed is only judged as ratios against a baseline
# measured in the same run (several rounds, median): the machines are shared and noisy.
#
# Usage: bench/run.sh            (fetch, issuance, renewal_scan, auth, akash, watch, rss, scale)
#        bench/run.sh fetch rss  (any of: rss, or the name of a benches/*.rs target)
# Exit status: non-zero when a benchmark fails (a wrong answer, a missing tool); a figure below
# its target is reported in the summary, not turned into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

what=("$@")
[ ${#what[@]} -gt 0 ] || what=(fetch issuance renewal_scan auth akash watch rss scale)

CERTFLEET_BENCH_DEPS=1 scripts/install-test-deps.sh
cargo build --release --locked
cargo bench --locked --no-run

out=$(mktemp -d -t certfleet-bench-XXXXXX)
trap 'rm -rf "$out"' EXIT

for item in "${what[@]}"; do
  echo
  case "$item" in
    rss) bench/idle-rss.sh | tee "$out/rss.txt" ;;
    *)
      [ -f "benches/$item.rs" ] || { echo "unknown benchmark $item: use rss or one of benches/*.rs" >&2; exit 2; }
      cargo bench --locked --bench "$item" | tee "$out/$item.txt"
      ;;
  esac
done

echo
echo "Summary ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)"
cat "$out"/*.txt | awk '
  BEGIN { printf "  %-34s %10s  %-10s %s\n", "measure", "value", "target", "verdict" }
  $1 == "RESULT" {
    # RESULT <name> <value> target <op> <bound> <verdict...> [(note)]
    verdict = $7; for (i = 8; i <= NF && $i !~ /^\(/; i++) verdict = verdict " " $i
    printf "  %-34s %10s  %-10s %s\n", $2, $3, $5 " " $6, verdict
  }'
