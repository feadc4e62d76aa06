#!/usr/bin/env bash
# A one-node Kubernetes 1.20.2 on this machine's Docker engine, for development and CI:
#   bash scripts/dev_kubernetes.sh build               # once: ~15-30 min cold, cached (below)
#   eval "$(bash scripts/dev_kubernetes.sh start)"   # stdout: only `export KUBECONFIG=…`
#   bash scripts/dev_kubernetes.sh stop              # ends what start began, removes its state
#   bash scripts/dev_kubernetes.sh built             # exit status: is the build cached?
# Runs as root (the kubelet drives Docker and cgroups). `start` builds first when the cache
# lacks this build. Binaries come from Debian's kubernetes source package (pinned below, with
# its vendor/), patched by scripts/lib/kubernetes-1.20-oom-score-adj.patch, and are cached with
# the source tree and its Go build cache in MLEB_KUBERNETES_CACHE/v1.20.2 (default
# /var/cache/mleb-kubernetes; about 3 GB), which a CI machine keeps between runs. Cluster state (etcd data, certificates, kubeconfigs, kubelet
# root, logs) lives in MLEB_DEV_CLUSTER_DIR, default /tmp/mleb-dev-kubernetes.
# Not here: a network plugin and kube-proxy. Pods get Docker's default bridge; NetworkPolicy
# objects are stored but nothing enforces them. No image is pulled: pods use local images
# with imagePullPolicy: Never, and the pause image is built from the tree's C source.
set -euo pipefail
DEV_NAME=dev_kubernetes
STATE=${MLEB_DEV_CLUSTER_DIR:-/tmp/mleb-dev-kubernetes}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/dev_cluster.sh
. "$ROOT/scripts/lib/dev_cluster.sh"

VERSION=v1.20.2
DEB_VERSION=1.20.5+really1.20.2-1.1+deb12u1
# The .dsc's sha256; dpkg-source then checks the tarballs against the .dsc.
DSC_SHA256=19fa1da5aefcef673894ac9511986bd98a14410cf8eea0b626613c30df435257
PATCH=$ROOT/scripts/lib/kubernetes-1.20-oom-score-adj.patch
CACHE=${MLEB_KUBERNETES_CACHE:-/var/cache/mleb-kubernetes}/$VERSION
BIN=$CACHE/bin
COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
PAUSE_IMAGE=mleb-pause:3.4
NODE=mleb-dev-node
SERVICE_CIDR=10.0.0.0/24
# One dev cluster per Docker engine: a kubelet treats every k8s_ container as its own, so a
# second one would kill the first one's pods. Every daemon inherits this lock.
LOCK=/run/mleb-dev-kubernetes.lock
# Host sysctls the kubelet sets at start (pkg/kubelet/cm): stop puts them back.
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
# What start creates in STATE, and so what stop removes.
OWNED=(cluster exports sysctl.saved pki etcd kubelet dockershim log run config)

# The vendored reflect2 1.0.1 reads Go's map iterator at its pre-1.18 layout, and the API
# server built with Debian's Go 1.19 dies on it ("unexpected fault address" in
# mapiterinit) at its first sorted-map JSON encoding. 1.0.2 (same API) fixes that: Debian's
# package replaces the vendored files at build time.
REFLECT2=/usr/share/gocode/src/github.com/modern-go/reflect2
REFLECT2_PACKAGE=golang-github-modern-go-reflect2-dev
REFLECT2_VERSION=1.0.2-2

# What the cached build must match: the package version, our patch and the reflect2 fix.
build_id() {
  echo "$DEB_VERSION $(sha256sum <"$PATCH" | cut -d' ' -f1) reflect2 $REFLECT2_VERSION"
}
built() { [ "$(cat "$BIN/BUILD_ID" 2>/dev/null)" = "$(build_id)" ]; }

install_missing() {
  local need=() tool
  for tool in go:golang-go rsync:rsync jq:jq etcd:etcd-server gcc:gcc make:make \
    dpkg-source:dpkg-dev openssl:openssl curl:curl patch:patch flock:util-linux; do
    command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
  done
  [ -f "$REFLECT2/go_above_118.go" ] || need+=("$REFLECT2_PACKAGE=$REFLECT2_VERSION")
  [ ${#need[@]} -eq 0 ] && return
  command -v apt-get >/dev/null || dev_die "missing: ${need[*]}"
  dev_log "installing Debian's ${need[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
}

# Debian's source package, checked against the pinned .dsc hash, into $CACHE/src.
fetch_source() {
  local tmp=$CACHE/fetch keep=$CACHE/output.keep
  rm -rf "$tmp" "$keep"
  mkdir -p "$tmp"
  # _output holds the Go cache: it outlives the tree.
  [ ! -d "$CACHE/src/_output" ] || mv "$CACHE/src/_output" "$keep"
  rm -rf "$CACHE/src"
  if ! apt-cache showsrc kubernetes 2>/dev/null | grep -qxF "Version: $DEB_VERSION"; then
    dev_log "adding a deb-src entry for bookworm (Debian's kubernetes source package)"
    cat >/etc/apt/sources.list.d/mleb-debian-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -qq >&2
  fi
  (cd "$tmp" && apt-get source -qq --download-only "kubernetes=$DEB_VERSION" >&2)
  local dsc=$tmp/kubernetes_${DEB_VERSION}.dsc
  echo "$DSC_SHA256  $dsc" | sha256sum -c --quiet - >&2 ||
    dev_die "$dsc does not match the pinned sha256"
  dpkg-source -x "$dsc" "$CACHE/src" >&2
  (cd "$CACHE/src" && patch -p1 --forward --quiet <"$PATCH" >&2)
  [ "$(dpkg-query -W -f '${Version}' "$REFLECT2_PACKAGE")" = "$REFLECT2_VERSION" ] ||
    dev_die "$REFLECT2_PACKAGE must be $REFLECT2_VERSION"
  local vendored=$CACHE/src/vendor/github.com/modern-go/reflect2
  rm -f "$vendored"/*.go "$vendored"/*.s
  cp "$REFLECT2"/*.go "$REFLECT2"/*.s "$vendored/"
  rm -f "$vendored"/*_test.go
  [ ! -d "$keep" ] || mv "$keep" "$CACHE/src/_output"
  rm -rf "$tmp"
}

# Builds the four binaries and the pause binary once; the Go cache makes a rebuild seconds.
# One build at a time; the lock's descriptor is closed before any daemon could inherit it.
build() {
  [ "$(id -u)" = 0 ] || dev_die "needs root (it installs Debian packages and writes $CACHE)"
  mkdir -p "$CACHE"
  exec 8>"$CACHE/.build.lock"
  flock 8
  if built; then
    dev_log "cached build of $VERSION in $BIN"
  else
    build_locked
  fi
  exec 8>&-
}

build_locked() {
  install_missing
  # A tree patched for another build id is fetched again: patches do not undo.
  [ "$(cat "$CACHE/src/.mleb-build-id" 2>/dev/null)" = "$(build_id)" ] || fetch_source
  build_id >"$CACHE/src/.mleb-build-id"
  # Kubernetes' make keeps its Go cache in _output/local/go/cache, whatever GOCACHE says.
  dev_log "building Kubernetes $VERSION in $CACHE/src; log: $CACHE/build.log"
  local whats=("${COMPONENTS[@]/#/cmd/}")
  if ! (cd "$CACHE/src" && KUBE_GIT_VERSION=$VERSION \
    nice -n 19 make WHAT="${whats[*]}" >"$CACHE/build.log" 2>&1); then
    dev_show_log "$CACHE/build.log"
    dev_die "the Kubernetes build failed"
  fi
  rm -rf "$BIN.new"
  mkdir -p "$BIN.new"
  local name
  for name in "${COMPONENTS[@]}"; do cp "$CACHE/src/_output/bin/$name" "$BIN.new/"; done
  gcc -Os -Wall -Werror -static -DVERSION=v3.4-mleb -o "$BIN.new/pause" \
    "$CACHE/src/build/pause/linux/pause.c"
  build_id >"$BIN.new/BUILD_ID"
  rm -rf "$BIN"
  mv "$BIN.new" "$BIN"
  dev_log "built $VERSION into $BIN"
}

# The pause image, FROM scratch around the static pause binary.
pause_image() {
  local ctx=$STATE/run/pause-image
  mkdir -p "$ctx"
  cp "$BIN/pause" "$ctx/pause"
  printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' \
    >"$ctx/Dockerfile"
  docker build -q -t "$PAUSE_IMAGE" "$ctx" >/dev/null
  rm -rf "$ctx"
}

# A key and a certificate signed by our CA: cert NAME CN ORG SANS (SANS may be empty).
cert() {
  local name=$1 cn=$2 org=$3 sans=$4 pki=$STATE/pki ext
  ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth"
  [ -z "$sans" ] || ext+=$'\n'"subjectAltName=$sans"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$name.key" 2>/dev/null
  openssl req -new -key "$pki/$name.key" -subj "/O=$org/CN=$cn" -out "$pki/$name.csr"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 30 -extfile <(echo "$ext") -out "$pki/$name.crt" 2>/dev/null
  rm "$pki/$name.csr"
}

write_pki() {
  local pki=$STATE/pki
  mkdir -m 700 "$pki"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=mleb-dev-kubernetes-ca" -days 30 \
    -out "$pki/ca.crt"
  local serving="IP:127.0.0.1,DNS:localhost"
  cert etcd etcd mleb "$serving"
  cert apiserver kube-apiserver mleb "$serving,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default"
  cert apiserver-etcd kube-apiserver-etcd-client mleb ""
  cert apiserver-kubelet kube-apiserver-kubelet-client system:masters ""
  cert kubelet-serving "system:node:$NODE" system:nodes "$serving,DNS:$NODE"
  cert kubelet "system:node:$NODE" system:nodes ""
  cert controller-manager system:kube-controller-manager mleb ""
  cert scheduler system:kube-scheduler mleb ""
  cert admin mleb-admin system:masters ""
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
  openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
}

# kubeconfig NAME: the API server with NAME's client certificate.
kubeconfig() {
  local pki=$STATE/pki
  cat >"$STATE/config/$1.kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: mleb-dev
  cluster: {server: "https://127.0.0.1:$api_port", certificate-authority: "$pki/ca.crt"}
users:
- name: $1
  user: {client-certificate: "$pki/$1.crt", client-key: "$pki/$1.key"}
contexts:
- name: mleb-dev
  context: {cluster: mleb-dev, user: $1}
current-context: mleb-dev
YAML
}

# GET/PATCH the API as the admin: api METHOD PATH [curl options].
api() {
  local method=$1 path=$2 pki=$STATE/pki
  shift 2
  curl -sf --max-time 10 -X "$method" --cacert "$pki/ca.crt" --cert "$pki/admin.crt" \
    --key "$pki/admin.key" "https://127.0.0.1:$api_port$path" "$@"
}

wait_for() {
  local what=$1 tenths=$2 _
  shift 2
  for _ in $(seq "$tenths"); do
    "$@" && return
    all_alive || break
    sleep 0.1
  done
  local daemon
  for daemon in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet; do
    [ -f "$STATE/log/$daemon.log" ] && dev_show_log "$STATE/log/$daemon.log"
  done
  dev_die "$what"
}

all_alive() {
  local daemon
  for daemon in "${started[@]}"; do dev_pid "$daemon" >/dev/null || return 1; done
}

api_healthy() { [ "$(api GET /healthz 2>/dev/null)" = ok ]; }
node_registered() { api GET "/api/v1/nodes/$NODE" >/dev/null 2>&1; }
node_ready() {
  api GET "/api/v1/nodes/$NODE" 2>/dev/null |
    jq -e '.status.conditions[] | select(.type == "Ready") | .status == "True"' >/dev/null
}
# Pods are refused until the namespace's default service account has its token.
default_account() {
  api GET /api/v1/namespaces/default/serviceaccounts/default 2>/dev/null |
    jq -e '(.secrets // []) | length > 0' >/dev/null
}

# The kubelet refuses a loopback node IP, so the node registers without an address and the
# API server cannot reach it for logs and exec: give it 127.0.0.1, where the kubelet listens.
set_node_address() {
  api PATCH "/api/v1/nodes/$NODE/status" -H 'Content-Type: application/merge-patch+json' \
    -d "{\"status\": {\"addresses\": [{\"type\": \"InternalIP\", \"address\": \"127.0.0.1\"},
        {\"type\": \"Hostname\", \"address\": \"$NODE\"}]}}" >/dev/null
}

write_kubelet_config() {
  local pki=$STATE/pki cgroup_driver
  cgroup_driver=$(docker info -f '{{.CgroupDriver}}')
  # Image garbage collection off (the machine's images are not ours to delete), no iptables
  # chains, eviction only near a full disk, the kubelet's API on 127.0.0.1 with client certs.
  cat >"$STATE/config/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz_port
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: $cgroup_driver
failSwapOn: false
oomScoreAdj: 0
makeIPTablesUtilChains: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%}
clusterDomain: cluster.local
YAML
}

start_daemons() {
  local pki=$STATE/pki etcd_port etcd_peer_port cm_port sched_port
  read -r etcd_port etcd_peer_port api_port cm_port sched_port kubelet_port \
    kubelet_healthz_port < <(dev_free_ports 7)
  local etcd_url=https://127.0.0.1:$etcd_port peer_url=https://127.0.0.1:$etcd_peer_port
  dev_start_daemon etcd "$STATE/log/etcd.log" etcd --name mleb --data-dir "$STATE/etcd" \
    --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
    --listen-peer-urls "$peer_url" --initial-advertise-peer-urls "$peer_url" \
    --initial-cluster "mleb=$peer_url" \
    --cert-file "$pki/etcd.crt" --key-file "$pki/etcd.key" --trusted-ca-file "$pki/ca.crt" \
    --client-cert-auth --peer-cert-file "$pki/etcd.crt" --peer-key-file "$pki/etcd.key" \
    --peer-trusted-ca-file "$pki/ca.crt" --peer-client-cert-auth
  started=(etcd)
  dev_start_daemon kube-apiserver "$STATE/log/kube-apiserver.log" "$BIN/kube-apiserver" \
    --etcd-servers "$etcd_url" --etcd-cafile "$pki/ca.crt" \
    --etcd-certfile "$pki/apiserver-etcd.crt" --etcd-keyfile "$pki/apiserver-etcd.key" \
    --bind-address 127.0.0.1 --secure-port "$api_port" --insecure-port 0 \
    --advertise-address 127.0.0.1 --endpoint-reconciler-type none \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" --anonymous-auth=false --profiling=false \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --kubelet-client-certificate "$pki/apiserver-kubelet.crt" \
    --kubelet-client-key "$pki/apiserver-kubelet.key" \
    --kubelet-certificate-authority "$pki/ca.crt" \
    --kubelet-preferred-address-types InternalIP \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range "$SERVICE_CIDR" --cert-dir "$STATE/run/apiserver"
  started+=(kube-apiserver)
  local name
  for name in controller-manager scheduler kubelet admin; do kubeconfig "$name"; done
  wait_for "the API server did not answer /healthz within 60 s" 600 api_healthy
  dev_start_daemon kube-controller-manager "$STATE/log/kube-controller-manager.log" \
    "$BIN/kube-controller-manager" --kubeconfig "$STATE/config/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$cm_port" --port 0 --leader-elect=false \
    --profiling=false --use-service-account-credentials \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --service-cluster-ip-range "$SERVICE_CIDR" --cert-dir "$STATE/run/controller-manager"
  dev_start_daemon kube-scheduler "$STATE/log/kube-scheduler.log" "$BIN/kube-scheduler" \
    --kubeconfig "$STATE/config/scheduler.kubeconfig" --bind-address 127.0.0.1 \
    --secure-port "$sched_port" --port 0 --leader-elect=false --profiling=false \
    --cert-dir "$STATE/run/scheduler"
  write_kubelet_config
  dev_start_daemon kubelet "$STATE/log/kubelet.log" "$BIN/kubelet" \
    --config "$STATE/config/kubelet.yaml" --kubeconfig "$STATE/config/kubelet.kubeconfig" \
    --hostname-override "$NODE" --node-ip 127.0.0.1 --container-runtime docker \
    --pod-infra-container-image "$PAUSE_IMAGE" --root-dir "$STATE/kubelet" \
    --experimental-dockershim-root-directory "$STATE/dockershim" \
    --volume-plugin-dir "$STATE/kubelet/volume-plugins" --cert-dir "$STATE/run/kubelet"
  started+=(kube-controller-manager kube-scheduler kubelet)
}

running() {
  local daemon
  for daemon in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet; do
    dev_pid "$daemon" >/dev/null || return 1
  done
  [ -f "$STATE/exports" ]
}

save_sysctls() {
  local name
  for name in "${SYSCTLS[@]}"; do echo "$name=$(sysctl -n "$name")"; done >"$STATE/sysctl.saved"
}

start() {
  [ "$(id -u)" = 0 ] || dev_die "needs root: the kubelet drives Docker and cgroups"
  dev_state_dir
  if running; then
    dev_log "already running"
    cat "$STATE/exports"
    return
  fi
  docker info >/dev/null 2>&1 || dev_die "no Docker engine answers"
  if ! built; then build; fi
  install_missing
  stop_all
  exec 9>>"$LOCK"
  flock -n 9 || dev_die "another dev Kubernetes cluster runs on this Docker engine (state in \
$(cat "$LOCK.owner" 2>/dev/null || echo unknown)): stop it first"
  echo "$STATE" >"$LOCK.owner"
  # From here a failed start ends whatever it began.
  trap stop_all EXIT
  echo "$DEV_NAME" >"$STATE/cluster"
  mkdir -m 700 "$STATE/log" "$STATE/run" "$STATE/config" "$STATE/etcd"
  save_sysctls
  write_pki
  pause_image
  local api_port kubelet_port kubelet_healthz_port started=()
  start_daemons
  wait_for "node $NODE did not register within 60 s" 600 node_registered
  set_node_address
  wait_for "node $NODE was not Ready within 60 s" 600 node_ready
  wait_for "the default service account had no token within 60 s" 600 default_account
  trap - EXIT
  dev_write_exports "KUBECONFIG=$STATE/config/admin.kubeconfig"
  dev_log "node $NODE Ready; API server https://127.0.0.1:$api_port"
  cat "$STATE/exports"
}

# The pod sandboxes our kubelet made and Docker still holds: dockershim keeps a checkpoint per
# sandbox, named by its container id, until the sandbox is removed (deleted pods' containers
# linger, stopped, until the kubelet's garbage collection).
sandbox_ids() {
  local file
  for file in "$STATE"/dockershim/sandbox/*; do
    [ ! -f "$file" ] || basename "$file"
  done
}

# Our pods' containers: each sandbox, and the containers that name it as theirs.
our_containers() {
  local sandbox
  for sandbox in $(sandbox_ids); do
    echo "$sandbox"
    docker ps -aq --no-trunc --filter "label=io.kubernetes.sandbox.id=$sandbox"
  done
}

# The uids of the pods whose sandboxes we hold.
pod_uids() {
  local sandbox
  for sandbox in $(sandbox_ids); do
    docker inspect -f '{{index .Config.Labels "io.kubernetes.pod.uid"}}' "$sandbox" 2>/dev/null ||
      true
  done
}

# Mounts the kubelet left under STATE (secret and token tmpfs), deepest first.
our_mounts() {
  awk -v prefix="$STATE/" 'index($5, prefix) == 1 {print $5}' /proc/self/mountinfo |
    sort -r
}

stop_all() {
  dev_stop_daemon kubelet TERM 15
  local ids uids uid mount
  ids=$(our_containers | sort -u)
  uids=$(pod_uids | sort -u)
  # shellcheck disable=SC2086 # one id per word
  [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || dev_log "could not remove containers $ids"
  # Outside its root, the kubelet keeps container-log links in fixed folders and a cgroup per
  # pod (emptied by docker rm; the kubepods parents stay for the next cluster).
  for uid in $uids; do
    find /var/log/containers -maxdepth 1 -lname "/var/log/pods/*_${uid}/*" -delete 2>/dev/null || true
    rm -rf /var/log/pods/*_"$uid"
    find /sys/fs/cgroup -maxdepth 5 -depth -type d -name "pod$uid" -exec rmdir {} + 2>/dev/null ||
      true
  done
  for mount in $(our_mounts); do umount "$mount" 2>/dev/null || umount -l "$mount"; done
  dev_stop_daemon kube-scheduler TERM 10
  dev_stop_daemon kube-controller-manager TERM 10
  dev_stop_daemon kube-apiserver TERM 15
  dev_stop_daemon etcd TERM 10
  local line
  if [ -f "$STATE/sysctl.saved" ]; then
    while read -r line; do sysctl -q -w "$line" >/dev/null || true; done <"$STATE/sysctl.saved"
  fi
  dev_remove_owned
}

case ${1:-} in
build) build ;;
built) built ;; # exit status only: whether the cache holds this build

start) start ;;
stop) dev_stop ;;
*)
  echo "usage: $0 build|built|start|stop" >&2
  exit 2
  ;;
esac
