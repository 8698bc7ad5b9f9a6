#!/usr/bin/env bash
# Installs and starts what the full test suite needs, then writes var/services.env.
#   - z3: solc-js prints clean --standard-json output only when z3 is present.
#   - chromium: the audit page is rendered headless by a browser test.
#   - PostgreSQL 15 from Debian, a throwaway cluster on a private port.
# Idempotent: safe to run again while the services are up.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p var

need=()
command -v z3 >/dev/null || need+=(z3)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
port=${FORGEPROOF_PG_PORT:-55432}
pgdata=/tmp/forgeproof-pg-$port
runas=()
[ "$(id -u)" -eq 0 ] && runas=(runuser -u postgres --)

if ! "${runas[@]}" "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
  rm -rf "$pgdata"
  mkdir -p "$pgdata"
  [ "$(id -u)" -eq 0 ] && chown postgres "$pgdata"
  "${runas[@]}" "$pgbin/initdb" -A trust -U postgres -D "$pgdata" >/dev/null 2>&1
  "${runas[@]}" "$pgbin/pg_ctl" -s -D "$pgdata" -l "$pgdata/log" \
    -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" -w start
fi
"${runas[@]}" "$pgbin/psql" -q -h 127.0.0.1 -p "$port" -U postgres -tc \
  "SELECT 1 FROM pg_database WHERE datname='forgeproof_test'" | grep -q 1 ||
  "${runas[@]}" "$pgbin/createdb" -h 127.0.0.1 -p "$port" -U postgres forgeproof_test

cat > var/services.env <<ENV
export FORGEPROOF_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:$port/forgeproof_test
export FORGEPROOF_ANVIL=$PWD/node_modules/.bin/anvil
ENV
echo "services ready: PostgreSQL on 127.0.0.1:$port, z3 $(z3 --version | cut -d' ' -f3)"
