#!/usr/bin/env bash
# Run emojax on every host of a Cloud TPU pod slice (one process per host).
#
#   launch/tpu_pod.sh TPU_NAME ZONE CONFIG WORKDIR [--config.a.b=v ...]
#   e.g. launch/tpu_pod.sh my-v5p-64 us-east5-a configs/smoke.py gs://bucket/runs/smoke
#
# The repository must be at $REMOTE_DIR on every host with its venv (see docs/scaling.md for
# the one-time setup). jax.distributed.initialize() detects the pod from the TPU metadata;
# WORKDIR should be a gs:// path (or a filesystem all hosts share). Re-running resumes.
set -euo pipefail

if [[ $# -lt 4 ]]; then sed -n '2,9p' "$0"; exit 2; fi
TPU_NAME=$1 ZONE=$2 CONFIG=$3 WORKDIR=$4
shift 4
REMOTE_DIR=${REMOTE_DIR:-\~/emojax}
EXTRA=$(printf ' %q' "$@")

gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --worker=all --command="
  cd $REMOTE_DIR && EMOJAX_DISTRIBUTED=auto .venv/bin/python -m emojax.cli train \
    --config=$CONFIG --workdir=$WORKDIR $EXTRA"
