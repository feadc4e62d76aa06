#!/usr/bin/env bash
# Collects wheels for mleb (the client) and mleb-server with its s3 extra (boto3, for
# MLEB_OBJECT_STORE=s3://…) and kubernetes extra (the official client, for the Kubernetes
# backend), with every dependency, into
# deploy/.wheelhouse. The stack image installs from there with --no-index, because image
# builds here cannot reach PyPI. Older wheels of mleb and mleb-server are removed first, so
# the image always gets the working tree's code.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
WHEELHOUSE=deploy/.wheelhouse

mkdir -p "$WHEELHOUSE"
rm -f "$WHEELHOUSE"/mleb-*.whl "$WHEELHOUSE"/mleb_server-*.whl
# setuptools leaves build/ behind; a stale one would put deleted modules in the wheel.
rm -rf build clients/python/build
# (grep drops pip's notes about configured find-links folders that do not exist here.)
"$PYTHON" -m pip wheel -q --wheel-dir "$WHEELHOUSE" clients/python ".[s3,kubernetes]" 2> >(grep -v "is ignored: it is neither" >&2)
rm -rf build clients/python/build
echo "[build_wheelhouse] $(find "$WHEELHOUSE" -name '*.whl' | wc -l) wheels in $WHEELHOUSE" >&2
