#!/usr/bin/env bash
# Installs the system packages some tests need (Debian's chromium, postgresql) when we are root on
# Debian. Elsewhere it says which tests cannot run; in CI (CI=true) those tests fail instead of skipping.
set -u
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo ">> installing ${need[*]} with apt-get (browser and PostgreSQL tests)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null && exit 0
  echo "!! apt-get could not install ${need[*]}" >&2
fi
echo "!! missing ${need[*]}: the browser tests (chromium) and PostgreSQL tests (postgresql) will be" >&2
echo "!! reported as not run; install them with: sudo apt-get install -y ${need[*]}" >&2
exit 0
