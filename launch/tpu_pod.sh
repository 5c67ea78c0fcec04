#!/usr/bin/env bash
# Creates (or reuses) a TPU VM slice, installs this package on every worker and
# starts one command of the stack on all workers at once; JAX finds the
# coordinator itself on TPU VMs (`--distributed` calls jax.distributed.initialize()).
#
#   TPU_NAME=sp-v4 ZONE=us-central2-b ACCELERATOR_TYPE=v4-8 PROJECT=my-proj \
#     launch/tpu_pod.sh train --config=configs/addition.py:scratchpad,small,paper --workdir=gs://bucket/runs/sp
#
# Environment: TPU_NAME, ZONE, ACCELERATOR_TYPE (v4-8, v5litepod-16, ...), PROJECT,
# RUNTIME_VERSION (default tpu-ubuntu2204-base), REPO_DIR (default ~/scratchpad on
# the workers). DRY_RUN=1 prints the gcloud commands instead of running them.
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}" "${ACCELERATOR_TYPE:?set ACCELERATOR_TYPE}" "${PROJECT:?set PROJECT}"
RUNTIME_VERSION="${RUNTIME_VERSION:-tpu-ubuntu2204-base}"
REPO_DIR="${REPO_DIR:-scratchpad}"
run() { if [[ -n "${DRY_RUN:-}" ]]; then printf '%q ' "$@"; echo; else "$@"; fi; }
gtpu=(gcloud compute tpus tpu-vm --project="$PROJECT" --zone="$ZONE")

if [[ -z "${DRY_RUN:-}" ]] && "${gtpu[@]}" describe "$TPU_NAME" >/dev/null 2>&1; then
  echo "reusing $TPU_NAME"
else
  run "${gtpu[@]}" create "$TPU_NAME" --accelerator-type="$ACCELERATOR_TYPE" --version="$RUNTIME_VERSION"
fi
cd "$(dirname "$0")/.."
run "${gtpu[@]}" scp --worker=all --recurse pyproject.toml README.md scratchpad configs "$TPU_NAME:$REPO_DIR/"
run "${gtpu[@]}" ssh "$TPU_NAME" --worker=all \
  --command="cd $REPO_DIR && python3 -m pip install -q -e '.[tpu]'"
args=$(printf '%q ' "$@")
run "${gtpu[@]}" ssh "$TPU_NAME" --worker=all \
  --command="cd $REPO_DIR && TF_CPP_MIN_LOG_LEVEL=3 python3 -m scratchpad $args --distributed"
