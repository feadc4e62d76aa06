#!/usr/bin/env bash
# Fails when src/gen/ is not what `npm run gen` produces from protos/ (CI runs this).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/gen.sh
if ! git diff --exit-code --stat -- src/gen || [ -n "$(git status --porcelain -- src/gen)" ]; then
  echo "clients/typescript/src/gen is stale: run 'npm run gen' there and commit the result" >&2
  git status --porcelain -- src/gen >&2
  exit 1
fi
