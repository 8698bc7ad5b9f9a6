#!/usr/bin/env bash
# CI: build the wheel, install it into a fresh virtual environment outside the checkout, and use
# it there: `forgeproof up --demo` long enough to fetch /healthz and a receipt, and
# `forgeproof ml predict` with a shipped model on a shipped sample. Proves that the contract
# artifact, the shipped models, the samples and the portal's pages and bundles travel inside
# the package.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=$(mktemp -d /tmp/forgeproof-wheel.XXXXXX)
server=""
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

.venv/bin/python -m pip wheel -q --no-deps --no-build-isolation -w "$work/dist" . 2>/dev/null ||
  .venv/bin/python -m pip wheel -q --no-deps -w "$work/dist" .
wheel=$(ls "$work"/dist/forgeproof-*.whl)
echo "built $(basename "$wheel") ($(du -h "$wheel" | cut -f1))"

python3 -m venv "$work/venv"
py="$work/venv/bin/python"
$py -m pip install -q --upgrade pip 2>/dev/null
# torch pinned exactly, as in the Makefile: a CPU wheel lies on local disk.
$py -m pip install -q torch==2.13.0 numpy 2>/dev/null
$py -m pip install -q "$wheel" 2>/dev/null
echo "installed into $work/venv"

cd "$work"  # nothing of the checkout on the path from here on
if $py -c "import ledger, sys; sys.exit(0 if '$repo' in ledger.__file__ else 1)"; then
  echo "the installed package resolves to the checkout" >&2
  exit 1
fi
port=$($py -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
"$work/venv/bin/forgeproof" up --demo --home "$work/demo" --port "$port" >"$work/up.log" 2>&1 &
server=$!
for _ in $(seq 1 600); do
  curl -fsS "http://127.0.0.1:$port/healthz" >"$work/health.json" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$work/up.log" >&2; exit 1; }
  sleep 0.5
done
echo "healthz: $(head -c 120 "$work/health.json")"
key=$(grep -oE 'fp_[A-Za-z0-9_-]+' "$work/up.log" | head -n 1)
[ -n "$key" ] || { echo "up --demo printed no API key" >&2; cat "$work/up.log" >&2; exit 1; }
for _ in $(seq 1 120); do
  status=$(curl -sS -o "$work/receipt.json" -w '%{http_code}' \
    -H "Authorization: Bearer $key" "http://127.0.0.1:$port/v1/records/0/receipt")
  [ "$status" = 200 ] && break
  sleep 0.5
done
[ "$status" = 200 ] || { echo "no receipt for record 0 (HTTP $status)" >&2; exit 1; }
$py -c "import json, sys; json.dump(json.load(open(sys.argv[1]))['receipt'], open(sys.argv[2], 'w'))" \
  "$work/receipt.json" "$work/r.json"
"$work/venv/bin/forgeproof" verify "$work/r.json" --offline
echo "receipt of record 0: $(head -c 100 "$work/r.json")..."
# The portal travels too: its pages, its verifier and the vendored bundles are package data.
for path in /signin /verify /docs /static/portal.css /static/vendor/ethers.umd.min.js \
  /static/vendor/swagger-ui-bundle.js /static/vendor/redoc.standalone.js; do
  curl -fsS -o /dev/null "http://127.0.0.1:$port$path" || { echo "portal: $path missing" >&2; exit 1; }
done
grep -q "ForgeproofVerify" <(curl -fsS "http://127.0.0.1:$port/verify") ||
  { echo "portal: /verify carries no verifier" >&2; exit 1; }
echo "portal: sign-in, verifier, API docs and their bundles served from the wheel"

sample=$($py -c "from ml.shipped import sample; print(sample('cmapss/test_FD001.txt'))")
"$work/venv/bin/forgeproof" ml predict --model rul-fd001 --input "$sample" -o "$work/rul.jsonl"
echo "ml predict: $(wc -l <"$work/rul.jsonl") predictions, first: $(head -c 100 "$work/rul.jsonl")"
echo "wheel check passed"
