#!/usr/bin/env bash
# Builds the docker-compose stack's images on this machine, pulling nothing:
#
#   mleb-base-python    Debian bookworm (minbase) with python3 and python3-venv: the stack
#                       image's BASE_IMAGE where python:3.11-slim cannot be pulled
#   mleb-test-postgres  Debian's PostgreSQL, started like the official postgres image
#                       (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, PGDATA)
#   mleb-server         deploy/Dockerfile on mleb-base-python, installed from the wheelhouse
#
# The two base images are kept when they exist; mleb-server is rebuilt every time, because
# it holds the working tree's code. Needs root (debootstrap). MLEB_DEBIAN_MIRROR overrides
# the mirror; MLEB_STACK_IMAGE names the service image (default mleb-server).
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=bookworm
MIRROR=${MLEB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
STACK_IMAGE=${MLEB_STACK_IMAGE:-mleb-server}
PATH_ENV="ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

have() { docker image inspect "$1" >/dev/null 2>&1; }
log() { echo "[build_stack_images] $*" >&2; }

WORK=$(mktemp -d /tmp/mleb-stack-images.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/debs"

debootstrap_root() {  # name, extra packages; .debs are shared between the two roots
  local root=$WORK/$1
  log "debootstrap $SUITE minbase + $2"
  debootstrap --variant=minbase --cache-dir="$WORK/debs" --include="$2" "$SUITE" "$root" \
    "$MIRROR" >"$WORK/$1.log" 2>&1 || { tail -20 "$WORK/$1.log"; exit 1; }
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/{doc,man,info,locale}/*
}

build_base_python() {
  debootstrap_root base-python python3,python3-venv
  tar -C "$WORK/base-python" -c . | docker import --change "$PATH_ENV" \
    --change "ENV LANG=C.UTF-8" --change 'CMD ["python3"]' - mleb-base-python >/dev/null
}

build_postgres() {
  debootstrap_root postgres postgresql
  local root=$WORK/postgres bin
  bin=$(find "$root/usr/lib/postgresql" -mindepth 2 -maxdepth 2 -name bin | head -1)
  bin=${bin#"$root"}
  # Debian's packaging made a "main" cluster; the entrypoint makes its own in PGDATA.
  rm -rf "$root"/etc/postgresql/*/main "$root"/var/lib/postgresql/*/main
  mkdir -p "$root/var/lib/postgresql/data"
  chroot "$root" chown postgres:postgres /var/lib/postgresql/data
  install -m 0755 /dev/stdin "$root/usr/local/bin/postgres-entrypoint" <<'SCRIPT'
#!/bin/sh
# Initialises PGDATA on first start (password auth for TCP clients), then runs the server.
set -eu
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
export PGDATA=${PGDATA:-/var/lib/postgresql/data}
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" -E UTF8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  printf 'host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n' \
    >>"$PGDATA/pg_hba.conf"
  # Socket only while the database is created, so TCP clients never see a half-made server.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  [ "$db" = postgres ] || createdb -U "$user" "$db"
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
SCRIPT
  tar -C "$root" -c . | docker import \
    --change "ENV PATH=$bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV LANG=C.UTF-8" --change "EXPOSE 5432" \
    --change 'ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]' - mleb-test-postgres >/dev/null
}

for image in mleb-base-python mleb-test-postgres; do
  if have "$image"; then
    log "$image exists"
    continue
  fi
  start=$SECONDS
  case $image in
    mleb-base-python) build_base_python ;;
    mleb-test-postgres) build_postgres ;;
  esac
  log "$image built in $((SECONDS - start)) s"
done

start=$SECONDS
bash scripts/build_wheelhouse.sh
# The context is deploy/ alone: the image needs only the wheelhouse and the health check.
DOCKER_BUILDKIT=0 docker build -q --build-arg BASE_IMAGE=mleb-base-python \
  -f deploy/Dockerfile -t "$STACK_IMAGE" deploy >/dev/null 2>"$WORK/build.log" ||
  { cat "$WORK/build.log"; exit 1; }
log "$STACK_IMAGE built in $((SECONDS - start)) s"
