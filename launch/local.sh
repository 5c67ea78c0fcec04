#!/usr/bin/env bash
# Runs one command of the stack on this machine, as one process or as several JAX
# processes that train together (what a multi-host pod does, on loopback):
#
#   launch/local.sh train --config=configs/addition.py:scratchpad,tiny --workdir=runs/sp
#   PROCESSES=2 HOST_DEVICES=4 launch/local.sh train --config=configs/addition.py:scratchpad,tiny --workdir=runs/sp2
#
# Environment:
#   HOST_DEVICES=N   split the CPU into N JAX devices per process (to try a sharded mesh)
#   PROCESSES=N      start N processes (gloo collectives on CPU); process 0 coordinates
#                    at localhost:PORT; the exit status is the first failure's
#   PORT             the coordinator's port (default 12355)
#   PYTHON           the interpreter (default python: the active environment's)
#   DRY_RUN=1        print the commands instead of running them
set -euo pipefail
[[ $# -gt 0 ]] || { echo "usage: launch/local.sh COMMAND [ARGS...]  (a command of python -m scratchpad)" >&2; exit 2; }
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
if [[ -n "${HOST_DEVICES:-}" ]]; then
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=${HOST_DEVICES}"
fi
processes="${PROCESSES:-1}"
if [[ "$processes" == 1 ]]; then
  if [[ -n "${DRY_RUN:-}" ]]; then printf '%q ' "$PYTHON" -m scratchpad "$@"; echo; exit 0; fi
  exec "$PYTHON" -m scratchpad "$@"
fi
pids=()
for ((i = 0; i < processes; i++)); do
  cmd=("$PYTHON" -m scratchpad "$@" --distributed --coordinator_address="localhost:${PORT:-12355}"
       --num_processes="$processes" --process_id="$i")
  if [[ -n "${DRY_RUN:-}" ]]; then printf '%q ' "${cmd[@]}"; echo; continue; fi
  "${cmd[@]}" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || { rc=$?; [[ $status != 0 ]] || status=$rc; }
done
exit $status
