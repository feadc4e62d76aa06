#!/usr/bin/env bash
# A one-node Slurm cluster with two fake GPUs, for development and CI:
#   eval "$(bash scripts/dev_slurm.sh start)"   # stdout: only `export NAME=value` lines
#   bash scripts/dev_slurm.sh stop              # ends what start began and removes its state
# Everything (configs, munge key and socket, logs, spool) lives in MLEB_DEV_CLUSTER_DIR,
# default /tmp/mleb-dev-slurm; /etc/slurm and a system munged are never used. Runs as root
# (slurmd runs each job as its submitter) and installs Debian's slurm-wlm and munge if missing.
set -euo pipefail
DEV_NAME=dev_slurm
STATE=${MLEB_DEV_CLUSTER_DIR:-/tmp/mleb-dev-slurm}
PARTITION=mleb
# shellcheck source=scripts/lib/dev_cluster.sh
. "$(dirname "$0")/lib/dev_cluster.sh"
CONF=$STATE/slurm.conf
HOST=$(hostname -s)
EPILOG=$(cd "$(dirname "$0")/.." && pwd)/deploy/slurm/epilog.sh
# What start creates in STATE, and so what stop removes.
OWNED=(cluster slurm.conf gres.conf exports key munge dev ctld spool log run)

install_missing() {
  local tool
  for tool in slurmctld slurmd sinfo sbatch scancel munged mungekey munge; do
    command -v "$tool" >/dev/null || break
  done
  command -v "$tool" >/dev/null && return
  command -v apt-get >/dev/null || dev_die "$tool is missing: install Slurm and munge"
  dev_log "$tool is missing: installing Debian's slurm-wlm and munge"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurm-wlm munge >&2
}

# munged with its own key, socket and files, so it never meets a system munge.
start_munge() {
  mkdir -m 700 "$STATE/key"
  mkdir -m 711 "$STATE/munge"
  mungekey --create --keyfile="$STATE/key/munge.key"
  dev_start_daemon munged "$STATE/log/munged.out" munged --foreground \
    --socket="$STATE/munge/munge.socket" --key-file="$STATE/key/munge.key" \
    --pid-file="$STATE/run/munged.pid" --log-file="$STATE/log/munged.log" \
    --seed-file="$STATE/key/munged.seed"
  local _
  for _ in $(seq 50); do
    munge -S "$STATE/munge/munge.socket" -n 2>/dev/null |
      unmunge -S "$STATE/munge/munge.socket" >/dev/null 2>&1 && return
    sleep 0.1
  done
  dev_show_log "$STATE/log/munged.log"
  dev_die "munged did not answer within 5 s"
}

# Two character devices with the NVIDIA major number: enough for Slurm's GRES accounting,
# which hands each job its devices as CUDA_VISIBLE_DEVICES.
make_fake_gpus() {
  mkdir -m 755 "$STATE/dev"
  mknod -m 666 "$STATE/dev/nvidia0" c 195 0
  mknod -m 666 "$STATE/dev/nvidia1" c 195 1
}

write_configs() {
  local ctld_port slurmd_port
  read -r ctld_port slurmd_port < <(dev_free_ports 2)
  # No cgroups: process tracking by parentage and no task plugin, so it runs in containers and
  # VMs without cgroup delegation. CPUs are declared (config_overrides), not probed, so that a
  # small machine still runs more jobs than it has GPUs and GPU limits are what queue jobs.
  cat >"$CONF" <<CONF
# Named after the state folder: job ids restart at 1 in every cluster, and the node
# epilog tells clusters sharing one Docker Engine apart by this name.
ClusterName=mleb-dev-$(printf %s "$STATE" | sha256sum | cut -c1-8)
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge/munge.socket
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
# Backfill every second: a job that needs no GPU starts while GPU jobs wait for theirs.
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
GresTypes=gpu
SlurmdParameters=config_overrides
ReturnToService=2
InactiveLimit=0
KillWait=2
# mleb's node epilog: removes the containers of a job whose node runner was killed.
Epilog=$EPILOG
MessageTimeout=10
SlurmdTimeout=30
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=8 RealMemory=4096 Gres=gpu:fake:2 State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
  echo "NodeName=$HOST Name=gpu Type=fake File=$STATE/dev/nvidia[0-1]" >"$STATE/gres.conf"
}

node_state() { SLURM_CONF=$CONF sinfo -h -n "$HOST" -o %T 2>/dev/null; }

running() {
  dev_pid munged >/dev/null && dev_pid slurmctld >/dev/null && dev_pid slurmd >/dev/null &&
    [ -n "$(node_state)" ]
}

start() {
  [ "$(id -u)" = 0 ] || dev_die "needs root: slurmd runs each job as the user who submitted it"
  dev_state_dir
  if running; then
    dev_log "already running ($CONF)"
    cat "$STATE/exports"
    return
  fi
  install_missing
  stop_all
  # From here a failed start ends whatever it began.
  trap stop_all EXIT
  echo "$DEV_NAME" >"$STATE/cluster"
  mkdir -m 755 "$STATE/log" "$STATE/run"
  mkdir -m 700 "$STATE/ctld" "$STATE/spool"
  start_munge
  make_fake_gpus
  write_configs
  export SLURM_CONF=$CONF
  # -c: a fresh controller, no jobs or state from an earlier cluster.
  dev_start_daemon slurmctld "$STATE/log/slurmctld.out" slurmctld -D -c
  dev_start_daemon slurmd "$STATE/log/slurmd.out" slurmd -D
  local _ state=""
  for _ in $(seq 300); do
    state=$(node_state) || true
    [ "$state" = idle ] && break
    if ! dev_pid slurmctld >/dev/null || ! dev_pid slurmd >/dev/null; then break; fi
    sleep 0.1
  done
  if [ "$state" != idle ]; then
    dev_show_log "$STATE/log/slurmctld.log"
    dev_show_log "$STATE/log/slurmd.log"
    dev_die "node $HOST is not idle after 30 s (state: ${state:-no answer})"
  fi
  trap - EXIT
  dev_write_exports "SLURM_CONF=$CONF" "MLEB_SLURM_PARTITION=$PARTITION" \
    "MLEB_SLURM_GPU_DEVICE_DIR=$STATE/dev"
  dev_log "node $HOST idle with 2 fake GPUs in partition $PARTITION"
  cat "$STATE/exports"
}

# Our jobs' processes: slurmstepd holding our slurmd's log open (it clears its own environment),
# and the processes of a job, which Slurm gives our SLURM_CONF and a SLURM_JOB_ID. A shell that
# merely exported SLURM_CONF has no job id and is never matched.
job_pids() {
  local proc comm environ
  for proc in /proc/[0-9]*; do
    read -r comm 2>/dev/null <"$proc/comm" || continue
    [ "$comm" = slurmstepd ] && find "$proc/fd" -lname "$STATE/log/slurmd.log" 2>/dev/null |
      grep -q . && echo "${proc#/proc/}"
  done
  grep -lzxF "SLURM_CONF=$CONF" /proc/[0-9]*/environ 2>/dev/null |
    while read -r environ; do
      grep -qz '^SLURM_JOB_ID=' "$environ" 2>/dev/null && echo "${environ:6:-8}"
    done
  return 0
}

# Waits up to `tenths` tenths of a second for every job process to end.
wait_jobs_gone() {
  local _
  for _ in $(seq "$1"); do
    [ -z "$(job_pids)" ] && return
    sleep 0.1
  done
  return 1
}

stop_all() {
  if dev_pid slurmctld >/dev/null; then
    # Cancelling lets each job's slurmstepd end its processes and report back.
    SLURM_CONF=$CONF scancel --partition="$PARTITION" 2>/dev/null || true
    wait_jobs_gone 100 || dev_log "jobs still running 10 s after scancel: killing them"
  fi
  dev_stop_daemon slurmd TERM 10
  dev_stop_daemon slurmctld TERM 10
  local pid
  for pid in $(job_pids); do kill -s KILL "$pid" 2>/dev/null || true; done
  wait_jobs_gone 50 || dev_log "job processes $(job_pids | tr '\n' ' ')survived SIGKILL"
  dev_stop_daemon munged TERM 10
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
