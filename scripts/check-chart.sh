#!/usr/bin/env bash
# Offline checks of the Helm chart charts/certfleet: helm lint --strict, rendering of the default
# values, every examples/*.yaml and variants, kubernetes-validate --strict on every manifest,
# the chart's promises (security context, probes, ports, storage, no secret in the ConfigMap),
# the renders that must fail (several replicas on SQLite, ...), and `certfleet check-config` on
# every rendered configuration. No cluster, no helm binary (helm-python-sdk is Helm's Go SDK as
# a Python library). What each check does: scripts/check_chart.py.
#
#   scripts/check-chart.sh                      # uses target/debug/certfleet
#   CERTFLEET_BIN=/path/to/certfleet scripts/check-chart.sh
set -euo pipefail

cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import helm_python, kubernetes_validate' 2>/dev/null \
    || ! command -v kubernetes-validate >/dev/null; then
    echo "installing helm-python-sdk and kubernetes-validate (PyPI)" >&2
    "$python" -m pip install --quiet helm-python-sdk kubernetes-validate
fi
command -v openssl >/dev/null || { echo "check-chart: openssl is needed (apt-get install -y openssl)" >&2; exit 1; }

exec "$python" scripts/check_chart.py "$@"
