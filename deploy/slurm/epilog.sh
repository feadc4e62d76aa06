#!/bin/sh
# Slurm node epilog for mleb's Slurm backend (docs/deploy.md#running-on-a-slurm-cluster):
# Slurm runs it as root on the node whenever a job ends, even one whose node runner was
# killed. It removes the containers that runner started (labelled with the cluster's name
# and the job's id: ids restart in every cluster), so no agent outlives the GPUs Slurm now
# counts as free. It never fails: a failing epilog drains the node.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
[ -n "${SLURM_JOB_ID:-}" ] || exit 0
command -v docker >/dev/null 2>&1 || exit 0
job="${SLURM_CLUSTER_NAME:-}:$SLURM_JOB_ID"
ids=$(docker ps -aq --filter "label=mleb.slurm_job=$job" 2>/dev/null) || exit 0
# shellcheck disable=SC2086
[ -z "$ids" ] || docker rm -f -v $ids >/dev/null 2>&1 || true
exit 0
