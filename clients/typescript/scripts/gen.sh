#!/usr/bin/env bash
# Regenerates src/gen/ from protos/ with ts-proto, through the protoc bundled in grpcio-tools.
# The google.rpc protos (Status and its details) come from googleapis-common-protos, the
# well-known types from grpcio-tools' include dir: both are in the Python env, so nothing is
# downloaded. CI runs scripts/check_gen.sh, which fails when the committed output differs.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$here/../.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
plugin=$here/node_modules/.bin/protoc-gen-ts_proto
if [ ! -x "$plugin" ]; then
  echo "ts-proto is not installed: run 'npm ci' in clients/typescript first" >&2
  exit 1
fi
wkt_include=$("$py" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')
rpc_include=$("$py" -c 'import google.rpc.status_pb2 as s, os; print(os.path.dirname(os.path.dirname(os.path.dirname(s.__file__))))')
out=$here/src/gen
rm -rf "$out"
mkdir -p "$out"
cd "$root"
# shellcheck disable=SC2046
"$py" -m grpc_tools.protoc \
  -I protos -I "$wkt_include" -I "$rpc_include" \
  --plugin=protoc-gen-ts_proto="$plugin" \
  --ts_proto_out="$out" \
  --ts_proto_opt=outputServices=grpc-js,env=node,esModuleInterop=true,oneof=unions,useOptionals=none \
  $(cd protos && find mleb -name '*.proto' | sort) \
  google/rpc/status.proto google/rpc/error_details.proto
