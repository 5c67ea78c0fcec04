#!/usr/bin/env bash
# One GPU host: installs the CUDA build of JAX with this package and runs one command
# of the stack on all of the host's GPUs (one process; the mesh spans them).
#
#   launch/gpu_host.sh train --config=configs/addition.py:scratchpad,small --workdir=runs/sp
#   CUDA_VISIBLE_DEVICES=0 launch/gpu_host.sh sweep --config=configs/sweeps/addition_sizes.py --workdir=runs/sizes
#
# Environment: SKIP_INSTALL=1 skips the pip install; DRY_RUN=1 prints the commands
# instead of running them. TensorFlow only feeds data: it is kept off the GPUs.
set -euo pipefail
[[ $# -gt 0 ]] || { echo "usage: launch/gpu_host.sh COMMAND [ARGS...]  (a command of python -m scratchpad)" >&2; exit 2; }
run() { if [[ -n "${DRY_RUN:-}" ]]; then printf '%q ' "$@"; echo; else "$@"; fi; }
cd "$(dirname "$0")/.."
if [[ -z "${SKIP_INSTALL:-}" ]]; then
  run python3 -m pip install -q -e '.[cuda]'
fi
export TF_CPP_MIN_LOG_LEVEL=3
run python3 -m scratchpad "$@"
