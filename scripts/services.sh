#!/usr/bin/env bash
# The services the tests start on loopback themselves (never a system-wide one): redis-server and nginx, from
# Debian's packages, installed when missing (with python3-venv, for the scripts' venvs). Nothing is started here.
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
# `python3 -m venv` (the scripts' PyPI venvs) needs ensurepip, which Debian ships apart.
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "services.sh: ${missing[*]} missing; install them (apt-get install ${missing[*]}) or run as root" >&2
    exit 2
  fi
  echo "== installing ${missing[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's packages start their own instances; the tests start theirs on free ports instead.
  if command -v service >/dev/null; then service redis-server stop >/dev/null 2>&1 || true; service nginx stop >/dev/null 2>&1 || true; fi
fi
export PATH="$PATH:/usr/sbin"
redis-server --version | head -1
nginx -v 2>&1 | head -1
