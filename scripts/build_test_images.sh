#!/usr/bin/env bash
# Builds the local images the sandbox uses and tests with; skips images that already exist.
# No registry is reachable, so nothing is pulled: roots come from the host's static busybox
# and from debootstrap (Debian mirror), and Python wheels are installed from the host's pip.
#
#   mleb-test-busybox       busybox root with a non-root user (uid 1000)
#   mleb-sidecar            python3.11 (minimal stdlib) only: runs the sidecar forwarder
#   mleb-test-python        Debian minbase, python3, curl, bash and the wheels test agents use
#   mleb-test-mlebench-env  an MLE-bench agent image look-alike (user nonroot, start.sh, and an
#                           entrypoint that would start a grading server)
#
# Needs root (debootstrap, chroot). MLEB_DEBIAN_MIRROR overrides the mirror.
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=bookworm
MIRROR=${MLEB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
# What test (and demo) agents import; pinned so the image is reproducible.
AGENT_WHEELS=(numpy==2.4.6 pandas==2.2.3 scikit-learn==1.9.1 grpcio==1.85.1 protobuf==7.36.2)
# Images carry a digest of what they are built from, so a changed recipe or client is
# rebuilt instead of reused (the engine's images outlive a checkout).
BUILD_ID=$(cat scripts/build_test_images.sh clients/python/pyproject.toml \
  $(find clients/python/src -name '*.py' -not -path '*/__pycache__/*' | sort) |
  sha256sum | cut -c1-16)
LABEL=(--change "LABEL mleb.test-image=$BUILD_ID")

have() {
  [ "$(docker image inspect -f '{{index .Config.Labels "mleb.test-image"}}' "$1" 2>/dev/null)" \
    = "$BUILD_ID" ]
}
log() { echo "[build_test_images] $*" >&2; }

WORK=$(mktemp -d /tmp/mleb-images.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

users_files() {  # root, then "name:uid" pairs
  local root=$1
  shift
  mkdir -p "$root/etc"
  echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
  echo "root:x:0:" >"$root/etc/group"
  for pair in "$@"; do
    echo "${pair%%:*}:x:${pair##*:}:${pair##*:}::/home/${pair%%:*}:/bin/sh" >>"$root/etc/passwd"
    echo "${pair%%:*}:x:${pair##*:}:" >>"$root/etc/group"
  done
}

build_busybox() {
  local root=$WORK/busybox
  mkdir -p "$root"/{bin,tmp,home/agent,root}
  cp /bin/busybox "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  users_files "$root" agent:1000 nobody:65534
  chmod 1777 "$root/tmp"
  chown 1000:1000 "$root/home/agent"
  tar -C "$root" -c . | docker import "${LABEL[@]}" --change "USER agent" \
    --change 'CMD ["/bin/sh"]' - mleb-test-busybox >/dev/null
}

debian_root() {  # one debootstrap, shared by the python images and the sidecar
  local root=$WORK/debian
  [ -d "$root/usr" ] && return
  log "debootstrap $SUITE (minbase + python3, curl)"
  debootstrap --variant=minbase --include=python3,curl,ca-certificates "$SUITE" "$root" \
    "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; exit 1; }
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/{doc,man,info,locale}/*
}

build_sidecar() {
  # python3.11's binary, its shared libraries and libpython3.11-minimal's stdlib: the
  # forwarder needs only socket, selectors and threading.
  debian_root
  local src=$WORK/debian root=$WORK/sidecar
  mkdir -p "$root"/{tmp,usr/bin}
  chmod 1777 "$root/tmp"
  cp -a "$src/usr/bin/python3.11" "$root/usr/bin/"
  ln -s python3.11 "$root/usr/bin/python3"
  for lib in $(chroot "$src" ldd /usr/bin/python3.11 | grep -oE '/[^ ]+'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -aL "$src$lib" "$root$lib"
  done
  chroot "$src" dpkg -L libpython3.11-minimal | while read -r path; do
    [ -f "$src$path" ] && install -D -m 0644 "$src$path" "$root$path"
  done
  users_files "$root" nobody:65534
  tar -C "$root" -c . | docker import "${LABEL[@]}" --change "USER 65534:65534" \
    --change 'ENTRYPOINT ["/usr/bin/python3", "-I", "-S"]' - mleb-sidecar >/dev/null
}

build_python() {
  debian_root
  local root=$WORK/debian
  chroot "$root" useradd --create-home --uid 1000 --shell /bin/bash agent
  log "installing agent wheels"
  "$PYTHON" -m pip wheel -q --no-deps -w "$WORK/wheels" clients/python
  "$PYTHON" -m pip install -q --only-binary=:all: --no-compile --no-warn-script-location \
    --target "$root/usr/local/lib/python3.11/dist-packages" \
    "$WORK"/wheels/mleb-*.whl "${AGENT_WHEELS[@]}"
  find "$root/usr/local/lib/python3.11/dist-packages" -depth -type d \
    \( -name tests -o -name __pycache__ \) -prune -exec rm -rf {} +
  # --target leaves console scripts in its own bin/, off PATH and with the host's
  # interpreter: put mleb-validate where the instructions say, on the image's python3.
  rm -rf "$root/usr/local/lib/python3.11/dist-packages/bin"
  printf '#!/usr/bin/python3\nfrom mleb.validate_cli import main\nraise SystemExit(main())\n' \
    >"$root/usr/local/bin/mleb-validate"
  chmod 755 "$root/usr/local/bin/mleb-validate"
  tar -C "$root" -c . | docker import "${LABEL[@]}" --change "USER agent" \
    --change "WORKDIR /home/agent" --change 'CMD ["python3"]' - mleb-test-python >/dev/null
}

build_mlebench_env() {
  # Like an agent image built on MLE-bench's mlebench-env: root by default, an entrypoint
  # that starts a grading server (which would need the answers), user nonroot, start.sh.
  local ctx=$WORK/mlebench-env
  mkdir -p "$ctx"
  cat >"$ctx/entrypoint.sh" <<'EOF'
#!/bin/bash
mkdir -p /home/logs
echo "grading server entrypoint ran" | tee /home/logs/entrypoint.log
exec python3 -m http.server 5000
EOF
  cat >"$ctx/start.sh" <<'EOF'
#!/bin/bash
echo "start.sh user=$(id -un) competition=$COMPETITION_ID"
echo "dirs=$SUBMISSION_DIR,$LOGS_DIR,$CODE_DIR,$AGENT_DIR"
touch "$AGENT_DIR/agent_was_here.txt" && echo "agent dir writable"
head -n 1 /home/data/sample_submission.csv >/dev/null && echo "data readable"
cp /home/data/sample_submission.csv "$SUBMISSION_DIR/submission.csv"
echo "print('hi')" >"$CODE_DIR/code.py"
echo "a log line" >"$LOGS_DIR/run.log"
bash /home/validate_submission.sh "$SUBMISSION_DIR/submission.csv"
EOF
  cat >"$ctx/Dockerfile" <<'EOF'
FROM mleb-test-python
USER root
ENV SUBMISSION_DIR=/home/submission LOGS_DIR=/home/logs CODE_DIR=/home/code AGENT_DIR=/home/agent
RUN useradd -m nonroot && mkdir -p /private /home/submission /home/agent && chmod 700 /private
COPY entrypoint.sh /entrypoint.sh
COPY start.sh /home/agent/start.sh
RUN chmod +x /entrypoint.sh
WORKDIR /home
LABEL mleb.test-image=BUILD_ID
ENTRYPOINT ["/entrypoint.sh"]
EOF
  sed -i "s/=BUILD_ID\$/=$BUILD_ID/" "$ctx/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t mleb-test-mlebench-env "$ctx" >/dev/null 2>"$WORK/build.log" ||
    { cat "$WORK/build.log"; exit 1; }
}

for image in mleb-test-busybox mleb-sidecar mleb-test-python mleb-test-mlebench-env; do
  if have "$image"; then
    log "$image exists"
    continue
  fi
  start=$SECONDS
  case $image in
    mleb-test-busybox) build_busybox ;;
    mleb-sidecar) build_sidecar ;;
    mleb-test-python) build_python ;;
    mleb-test-mlebench-env) build_mlebench_env ;;
  esac
  log "$image built in $((SECONDS - start)) s"
done
