#!/usr/bin/env bash
# One GPU host: installs the CUDA build of JAX and runs a command of the stack.
#   launch/gpu_host.sh train --config=configs/addition.py:scratchpad,small --workdir=runs/sp
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e '.[cuda]'
# TensorFlow only feeds data; scratchpad.tasks hides the GPU from it.
export TF_CPP_MIN_LOG_LEVEL=3
exec python3 -m scratchpad "$@"
