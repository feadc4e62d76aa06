#!/usr/bin/env bash
# Regenerates the Python stubs (with .pyi) from protos/ into the client package.
# CI runs this and fails when the committed code differs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
out=clients/python/src
for area in common registry grader sandbox; do
  rm -f "$out"/mleb/$area/v1/*_pb2*.py "$out"/mleb/$area/v1/*_pb2*.pyi
  mkdir -p "$out/mleb/$area/v1"
  touch "$out/mleb/$area/__init__.py" "$out/mleb/$area/v1/__init__.py"
done
# shellcheck disable=SC2046
"$PY" -m grpc_tools.protoc -Iprotos \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  $(find protos -name '*.proto' | sort)
