# shellcheck shell=bash
# Shared by scripts/dev_slurm.sh and scripts/dev_s3.sh (sourced, never run): a private state
# directory, daemons tracked by pid files, free ports, and the exports `start` prints.
# The caller sets DEV_NAME (for messages) and STATE (the state directory) first.

dev_log() { printf '%s: %s\n' "$DEV_NAME" "$*" >&2; }
dev_die() {
  dev_log "$*"
  exit 1
}

# Makes STATE, or accepts it, only where no other user could swap or fill it: each level is a
# real directory (never a symlink), owned by root or by us, and not writable by others unless
# sticky (as /tmp is); STATE itself is ours alone. Secrets go in files or folders only we read.
dev_state_dir() {
  local uid path="" part owner mode
  uid=$(id -u)
  [[ $STATE == /* ]] || dev_die "MLEB_DEV_CLUSTER_DIR must be an absolute path, not $STATE"
  IFS=/ read -ra parts <<<"${STATE#/}"
  for part in "${parts[@]}"; do
    [ -n "$part" ] || continue
    [[ $part != . && $part != .. ]] || dev_die "MLEB_DEV_CLUSTER_DIR may not contain . or ..: $STATE"
    path+=/$part
    if [ ! -e "$path" ] && [ ! -L "$path" ]; then
      mkdir -m 755 "$path" || dev_die "cannot create $path"
    fi
    [ ! -L "$path" ] || dev_die "refusing $STATE: $path is a symlink"
    [ -d "$path" ] || dev_die "refusing $STATE: $path is not a directory"
    read -r owner mode < <(stat -c '%u %a' "$path")
    mode=$((8#$mode))
    if [ "$path" = "$STATE" ]; then
      if [ "$owner" != "$uid" ] || ((mode & 8#022)); then
        dev_die "refusing $STATE: it must be ours alone (owner uid $owner, mode $(printf %o "$mode"))"
      fi
    elif { [ "$owner" != 0 ] && [ "$owner" != "$uid" ]; } || ((mode & 8#022 && !(mode & 8#1000))); then
      dev_die "refusing $STATE: another user could replace $path"
    fi
  done
  dev_claim_state
}

# One folder, one kind of cluster: the scripts name some of their files alike, so a folder
# holding the other script's cluster is refused, never shared or emptied.
dev_claim_state() {
  local owner
  if read -r owner 2>/dev/null <"$STATE/cluster"; then
    [ "$owner" = "$DEV_NAME" ] ||
      dev_die "$STATE holds a $owner cluster: give each script its own MLEB_DEV_CLUSTER_DIR"
  fi
}

# The start time (clock ticks since boot) of a live, non-zombie process, or nothing.
_dev_start_time() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  # Fields after the parenthesised name: state is the 1st, starttime the 20th.
  read -ra fields <<<"${stat##*) }"
  [ "${fields[0]}" != Z ] || return 1
  echo "${fields[19]}"
}

# Starts a daemon in its own session, detached from our stdout (so `eval "$(… start)"`
# returns), and records its pid with its start time: a pid reused later is never signalled.
dev_start_daemon() {
  local name=$1 log=$2
  shift 2
  setsid "$@" </dev/null >>"$log" 2>&1 &
  echo "$! $(_dev_start_time $!)" >"$STATE/$name.pid"
}

# The pid of the daemon `name` that we started, if it still runs.
dev_pid() {
  local pid started
  read -r pid started 2>/dev/null <"$STATE/$1.pid" || return 1
  [ -n "$pid" ] && [ "$(_dev_start_time "$pid")" = "$started" ] && echo "$pid"
}

# Sends `signal` to the daemon we started, waits up to `wait_s` for it to go, then SIGKILLs it.
dev_stop_daemon() {
  local name=$1 signal=$2 wait_s=$3 pid i
  if pid=$(dev_pid "$name"); then
    kill -s "$signal" "$pid" 2>/dev/null || true
    for ((i = 0; i < wait_s * 10; i++)); do
      dev_pid "$name" >/dev/null || break
      sleep 0.1
    done
    if dev_pid "$name" >/dev/null; then
      dev_log "$name ignored SIG$signal for ${wait_s}s: killing it"
      kill -s KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        dev_pid "$name" >/dev/null || break
        sleep 0.1
      done
    fi
  fi
  rm -f "$STATE/$name.pid"
}

# `count` distinct TCP ports free on 127.0.0.1 now (held together while chosen).
dev_free_ports() {
  local python=/usr/bin/python3
  [ -x "$python" ] || python=python3
  "$python" - "$1" <<'PY'
import socket
import sys

held = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in held:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in held))
PY
}

# Writes `export NAME=value` lines for the given NAME=value pairs to STATE/exports, which
# only we may read: it may hold a secret.
dev_write_exports() {
  local pair
  (
    umask 077
    for pair in "$@"; do
      printf 'export %s=%q\n' "${pair%%=*}" "${pair#*=}"
    done >"$STATE/exports"
  )
}

# The last lines of a log, on stderr, when a daemon did not come up.
dev_show_log() {
  dev_log "last lines of $1:"
  tail -n 20 "$1" >&2 2>/dev/null || true
}

# The files start creates in STATE (the script's OWNED list): stop_all ends with this.
dev_remove_owned() {
  local name
  for name in "${OWNED[@]}"; do rm -rf "${STATE:?}/$name"; done
}

# `stop`: the calling script's stop_all ends its daemons and removes what it owns.
dev_stop() {
  [ -d "$STATE" ] || return 0
  dev_state_dir
  stop_all
  rmdir "$STATE" 2>/dev/null || true
  dev_log "stopped"
}
