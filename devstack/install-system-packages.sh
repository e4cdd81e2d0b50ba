#!/usr/bin/env bash
# Installs the Debian packages the local platform runs on, when they are missing:
# PostgreSQL server, Redis, a JDK and Maven for the Kafka broker, Prometheus (and
# promtool) for metrics and alert rules. Quick when all are present (no apt-get
# call at all).
set -euo pipefail

missing=()
have_postgres_server() { compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; }
have_postgres_server || missing+=(postgresql)
command -v psql >/dev/null || missing+=(postgresql-client)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v java >/dev/null || missing+=(default-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v promtool >/dev/null || missing+=(prometheus)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "devstack: installing system packages: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "devstack: need root (or sudo) to install ${missing[*]}" >&2
  exec sudo "$0"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts its own clusters/daemons on install; the devstack runs private
# ones on other ports, so the machine-wide ones are left as they are. Prometheus is
# the exception: the machine-wide one would take 9090, so the one installed here
# for the devstack is not left running.
if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
echo "devstack: installed ${missing[*]}"
