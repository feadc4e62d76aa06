#!/usr/bin/env bash
# The main job: set up, then `mleb demo` (every service on built-in competitions, with
# SQLite and a local data dir). With a Docker engine and root, the agent image is built
# locally first (no registry pulls); otherwise the demo uses the local-process backend.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if docker info >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  missing=()
  [ -x /bin/busybox ] || missing+=(busybox-static)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
  bash scripts/build_test_images.sh
fi
exec .venv/bin/mleb demo "$@"
