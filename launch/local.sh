#!/usr/bin/env bash
# Runs a command of the stack on this machine, e.g.
#   launch/local.sh train --config=configs/addition.py:scratchpad,tiny --workdir=runs/sp
# HOST_DEVICES=N splits the CPU into N JAX devices (to try a sharded mesh locally).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${HOST_DEVICES:-}" ]]; then
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=${HOST_DEVICES}"
fi
exec python -m scratchpad "$@"
