#!/usr/bin/env bash
# Static checks CI runs: generated code up to date, buf lint/format/breaking, ruff.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/gen_protos.sh
if ! git diff --exit-code --stat -- clients/python/src || [ -n "$(git status --porcelain -- clients/python/src)" ]; then
  echo "generated code is stale: run scripts/gen_protos.sh and commit the result" >&2
  git status --porcelain -- clients/python/src >&2
  exit 1
fi
bash clients/typescript/scripts/check_gen.sh
.venv/bin/buf lint
.venv/bin/buf format --diff --exit-code
# v1 is tagged: only additive changes from here (protos/v1.binpb is the tagged API's image).
.venv/bin/buf breaking --against protos/v1.binpb
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/ruff format --check .
