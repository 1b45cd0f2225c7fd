#!/usr/bin/env bash
# certfleet end to end on local defaults: a local Pebble CA (with pebble-challtestsrv as its DNS),
# certfleet on SQLite, a certificate requested with curl over HTTP-01, and its subject, issuer
# and validity shown. Everything runs on 127.0.0.1 and is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
CERTFLEET_DEMO_DEPS=1 scripts/install-test-deps.sh
cargo build --locked --quiet
bin="$PWD/target/debug/certfleet"

work=$(mktemp -d -t certfleet-demo-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

step() { printf '\n==> %s\n' "$*"; }
wait_for() { # URL [curl args...]
  local url=$1; shift
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "$@" "$url" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "demo: $url never answered" >&2
  return 1
}

step "making a TLS certificate for Pebble's own HTTPS (a throw-away CA)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -keyout ca.key -out ca.pem -subj "/CN=certfleet demo CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout pebble.key -out pebble.csr -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' > leaf.ext
openssl x509 -req -in pebble.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
  -out pebble.pem -extfile leaf.ext 2>/dev/null

step "starting pebble-challtestsrv (DNS: every name is 127.0.0.1) and Pebble"
cat > pebble.json <<JSON
{"pebble": {"listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000",
  "certificate": "pebble.pem", "privateKey": "pebble.key", "httpPort": 5002, "tlsPort": 5001,
  "ocspResponderURL": "", "externalAccountBindingRequired": false}}
JSON
pebble-challtestsrv -management 127.0.0.1:8055 -dns01 127.0.0.1:8053 -http01 "" -https01 "" \
  -tlsalpn01 "" -defaultIPv4 127.0.0.1 -defaultIPv6 "" > challtestsrv.log 2>&1 &
pids+=($!)
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
  pebble -config pebble.json -dnsserver 127.0.0.1:8053 > pebble.log 2>&1 &
pids+=($!)
wait_for https://127.0.0.1:14000/dir --cacert ca.pem

step "starting certfleet on SQLite (API on 127.0.0.1:8443, HTTP-01 on 127.0.0.1:5002, metrics on 127.0.0.1:15090)"
key="demo-$(openssl rand -hex 24)"
cat > certfleet.yaml <<YAML
server:
  listen: "127.0.0.1:8443"
  metricsListen: "127.0.0.1:15090"
storage:
  url: "sqlite://$work/certfleet.db"
acme:
  directoryUrl: "https://127.0.0.1:14000/dir"
  caCertificates: "$work/ca.pem"
  email: "ops@example.test"
challenges:
  http01:
    listen: "127.0.0.1:5002"
auth:
  psk:
    keys:
      - name: demo
        key: "$key"
        domains: ["*.example.test", "example.test"]
YAML
"$bin" --config certfleet.yaml serve > certfleet.log 2>&1 &
pids+=($!)
wait_for http://127.0.0.1:8443/readyz

step "curl -X POST /api/certificate for demo.example.test + www.demo.example.test"
start=$(date +%s.%N)
curl -fsS -X POST http://127.0.0.1:8443/api/certificate \
  -H "Authorization: APIKey $key" -H "Content-Type: application/json" \
  -d '{"domains": ["demo.example.test", "www.demo.example.test"]}' > response.json
end=$(date +%s.%N)
python3 - <<'PY'
import json
body = json.load(open("response.json"))
open("cert.pem", "w").write(body["certificate"])
print(f"issued in one request: cached={json.dumps(body['cached'])}, notAfter={body['notAfter']}, renewAfter={body['renewAfter']}")
PY
printf 'request took %.2f s\n' "$(echo "$end - $start" | bc -l 2>/dev/null || python3 -c "print($end - $start)")"
openssl x509 -in cert.pem -noout -subject -issuer -dates -ext subjectAltName

step "asking again: served from the store"
curl -fsS -X POST http://127.0.0.1:8443/api/certificate \
  -H "Authorization: APIKey $key" -H "Content-Type: application/json" \
  -d '{"domains": ["www.demo.example.test", "demo.example.test"]}' \
  | python3 -c 'import json,sys; b=json.load(sys.stdin); print("cached:", json.dumps(b["cached"]), "domains:", ", ".join(b["domains"]))'

step "what Prometheus sees, and the audit trail"
curl -fsS http://127.0.0.1:15090/metrics \
  | grep -E '^certfleet_(certificate_expiry_timestamp_seconds|issuances_total|private_key_deliveries_total)' || true
grep 'private key delivered' certfleet.log || true
echo
echo "demo: done (certfleet log: $(grep -c . certfleet.log) lines; all processes stopped)"
