#!/usr/bin/env bash
# N processes of one emojax job on this machine (CPU devices), for the multi-host code paths.
#
#   launch/local.sh N [DEVICES_PER_PROCESS] -- emojax train --config=configs/smoke.py --workdir=DIR
#
# Each process gets EMOJAX_COORDINATOR_ADDRESS / EMOJAX_NUM_PROCESSES / EMOJAX_PROCESS_ID
# (read by emojax.parallel.initialize_distributed), JAX_PLATFORMS=cpu and
# DEVICES_PER_PROCESS (default 4) fake CPU devices. Process 0's output goes to the terminal,
# the others' to DIR-less logs in ${EMOJAX_LOG_DIR:-/tmp}/emojax_local_<pid>_<i>.log.
# The exit code is the first non-zero exit code of the processes (0 if all succeed).
set -euo pipefail

if [[ $# -lt 3 ]]; then
  sed -n '2,10p' "$0"; exit 2
fi
NUM_PROCESSES=$1; shift
DEVICES=4
if [[ $1 != "--" ]]; then DEVICES=$1; shift; fi
[[ $1 == "--" ]] && shift
PORT=${EMOJAX_PORT:-$((20000 + RANDOM % 20000))}
LOG_DIR=${EMOJAX_LOG_DIR:-/tmp}

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup INT TERM

for ((i = 0; i < NUM_PROCESSES; i++)); do
  log="$LOG_DIR/emojax_local_$$_$i.log"
  env JAX_PLATFORMS=cpu \
    XLA_FLAGS="--xla_force_host_platform_device_count=$DEVICES ${XLA_FLAGS:-}" \
    EMOJAX_COORDINATOR_ADDRESS="127.0.0.1:$PORT" \
    EMOJAX_NUM_PROCESSES="$NUM_PROCESSES" \
    EMOJAX_PROCESS_ID="$i" \
    "$@" > >(if [[ $i == 0 ]]; then cat; else cat > "$log"; fi) 2>&1 &
  pids+=($!)
done

status=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    code=$?
    echo "launch/local.sh: process $i exited with $code (log: $LOG_DIR/emojax_local_$$_$i.log)" >&2
    [[ $status == 0 ]] && status=$code
  fi
done
exit $status
