#!/usr/bin/env bash
# Creates (or reuses) a TPU VM slice, copies this package to every worker, installs it
# there and starts one command of the stack (train, compare, sweep, pause-study, ...)
# on all workers at once. `--distributed` makes each worker call
# jax.distributed.initialize(), which on TPU VMs finds the coordinator (worker 0)
# and the process count itself.
#
#   TPU_NAME=sp-v4 ZONE=us-central2-b ACCELERATOR_TYPE=v4-8 PROJECT=my-proj \
#     launch/tpu_pod.sh train --config=configs/addition.py:scratchpad,small,paper --workdir=/gcs/my-bucket/runs/sp
#   TPU_NAME=sp-v5e ZONE=us-west4-a ACCELERATOR_TYPE=v5litepod-16 PROJECT=my-proj BUCKET=my-bucket SPOT=1 \
#     launch/tpu_pod.sh sweep --config=configs/sweeps/addition_sizes.py:paper --workdir=/gcs/my-bucket/runs/sizes
#
# Environment:
#   TPU_NAME, ZONE, ACCELERATOR_TYPE (v4-8, v4-32, v5litepod-16, ...), PROJECT   required
#   RUNTIME_VERSION  TPU VM image (default tpu-ubuntu2204-base; v5e: v2-alpha-tpuv5-lite)
#   REPO_DIR         where the package goes on each worker (default scratchpad, under ~)
#   BUCKET           optional: mount gs://BUCKET at /gcs/BUCKET on every worker (gcsfuse).
#                    A workdir must be shared by all workers (Orbax saves from all of them):
#                    gs://BUCKET/... as it is, or a path on the mount
#   SPOT=1           create the slice as Spot VMs (preempted with SIGTERM: the stack saves
#                    and exits; rerun the same command to resume)
#   DRY_RUN=1        print the commands instead of running them
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}" "${ACCELERATOR_TYPE:?set ACCELERATOR_TYPE}" "${PROJECT:?set PROJECT}"
[[ $# -gt 0 ]] || { echo "usage: launch/tpu_pod.sh COMMAND [ARGS...]  (a command of python -m scratchpad)" >&2; exit 2; }
RUNTIME_VERSION="${RUNTIME_VERSION:-tpu-ubuntu2204-base}"
REPO_DIR="${REPO_DIR:-scratchpad}"
run() { if [[ -n "${DRY_RUN:-}" ]]; then printf '%q ' "$@"; echo; else "$@"; fi; }
gtpu=(gcloud compute tpus tpu-vm --project="$PROJECT" --zone="$ZONE")
on_all_workers() { run "${gtpu[@]}" ssh "$TPU_NAME" --worker=all --command="$1"; }

if [[ -z "${DRY_RUN:-}" ]] && "${gtpu[@]}" describe "$TPU_NAME" >/dev/null 2>&1; then
  echo "reusing $TPU_NAME"
else
  run "${gtpu[@]}" create "$TPU_NAME" --accelerator-type="$ACCELERATOR_TYPE" --version="$RUNTIME_VERSION" \
    ${SPOT:+--spot}
fi
cd "$(dirname "$0")/.."
on_all_workers "mkdir -p $REPO_DIR"
run "${gtpu[@]}" scp --worker=all --recurse pyproject.toml README.md scratchpad configs "$TPU_NAME:$REPO_DIR/"
on_all_workers "cd $REPO_DIR && python3 -m pip install -q -e '.[tpu]'"
if [[ -n "${BUCKET:-}" ]]; then
  on_all_workers "mountpoint -q /gcs/$BUCKET || { sudo mkdir -p /gcs/$BUCKET && sudo chown \$USER /gcs/$BUCKET && gcsfuse --implicit-dirs $BUCKET /gcs/$BUCKET; }"
fi
args=$(printf '%q ' "$@")
on_all_workers "cd $REPO_DIR && python3 -m scratchpad $args--distributed"
