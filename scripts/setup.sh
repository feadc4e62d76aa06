#!/usr/bin/env bash
# Creates .venv and installs the client and the server (with dev tools) into it.
# Needs only Python 3.11 with venv; on Debian, installs python3-venv when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian 12's own interpreter by default: it is what the README promises to work with.
PYTHON=${PYTHON:-$(if [ -x /usr/bin/python3 ]; then echo /usr/bin/python3; else echo python3; fi)}
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
  else
    echo "Python's venv module is missing: install python3-venv" >&2
    exit 1
  fi
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "mleb supports Python 3.11 (Debian 12's python3); $PYTHON is $("$PYTHON" -V 2>&1)." \
    "Set PYTHON to a Python 3.11 interpreter." >&2
  exit 1
fi
# A venv left by another interpreter is rebuilt: the tests must run on the one asked for.
if [ -x .venv/bin/python ] && [ "$(.venv/bin/python -c 'import sys; print(sys.base_prefix)')" \
  != "$("$PYTHON" -c 'import sys; print(sys.base_prefix)')" ]; then
  rm -rf .venv
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e 'clients/python[lab]' -e '.[dev]'
