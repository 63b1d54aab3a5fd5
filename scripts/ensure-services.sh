#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis the suite needs answer; start (or install) them if not.
# Usage: ensure-services.sh DATABASE_URL REDIS_URL
set -euo pipefail
db_url=$1
redis_url=$2

hostport() {  # scheme://[user@]host:port/... -> "host port"
  local rest=${1#*://}
  rest=${rest#*@}
  rest=${rest%%/*}
  local host=${rest%%:*} port=${rest##*:}
  [ "$port" = "$rest" ] && port=$2
  echo "$host" "$port"
}

answers() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    return 1
  fi
  echo "installing $* from Debian packages..."
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

read -r pg_host pg_port < <(hostport "$db_url" 5432)
if ! answers "$pg_host" "$pg_port"; then
  if [[ "$pg_host" =~ ^(127\.0\.0\.1|localhost)$ ]]; then
    command -v pg_ctlcluster >/dev/null || apt_install postgresql || true
    if command -v pg_ctlcluster >/dev/null; then
      echo "starting PostgreSQL..."
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | tail -1)" main start || true
      for _ in $(seq 1 20); do answers "$pg_host" "$pg_port" && break; sleep 0.5; done
    fi
  fi
  if ! answers "$pg_host" "$pg_port"; then
    echo "make test needs PostgreSQL at $pg_host:$pg_port (set DATABASE_URL, or install the" >&2
    echo "Debian package 'postgresql' with trust auth for 127.0.0.1); none answers." >&2
    exit 1
  fi
fi

read -r r_host r_port < <(hostport "$redis_url" 6379)
if ! answers "$r_host" "$r_port"; then
  if [[ "$r_host" =~ ^(127\.0\.0\.1|localhost)$ ]]; then
    command -v redis-server >/dev/null || apt_install redis-server || true
    if command -v redis-server >/dev/null; then
      echo "starting Redis..."
      redis-server --daemonize yes --bind 127.0.0.1 --port "$r_port" --save "" --appendonly no >/dev/null
      for _ in $(seq 1 20); do answers "$r_host" "$r_port" && break; sleep 0.5; done
    fi
  fi
  if ! answers "$r_host" "$r_port"; then
    echo "make test needs Redis at $r_host:$r_port (set REDIS_URL, or install the Debian" >&2
    echo "package 'redis-server'); none answers." >&2
    exit 1
  fi
fi

# The database itself (pytest-django creates test_<name> beside it; the migrations check reads it).
.venv/bin/python - "$db_url" <<'PY'
import sys

import dj_database_url
import psycopg2
from psycopg2 import sql

cfg = dj_database_url.parse(sys.argv[1])
params = {"host": cfg["HOST"] or None, "port": cfg["PORT"] or None, "user": cfg["USER"] or None,
          "password": cfg["PASSWORD"] or None}
try:
    psycopg2.connect(dbname=cfg["NAME"], **params).close()
except psycopg2.OperationalError:
    conn = psycopg2.connect(dbname="postgres", **params)
    conn.autocommit = True
    conn.cursor().execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(cfg["NAME"])))
    conn.close()
    print(f"created database {cfg['NAME']}")
PY
