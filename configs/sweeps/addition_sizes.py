"""Long addition across model sizes, direct vs scratchpad (Nye et al. 2021, figure 3).

    python -m scratchpad sweep --config=configs/sweeps/addition_sizes.py --workdir=runs/addition_sizes
    python -m scratchpad report --workdir=runs/addition_sizes

ARG picks the scale: `laptop` (default): four sizes from 0.13M to 4.9M parameters on
the main job's data (1-8 digit operands, ood 9-10), 1,500 steps per run, what a 2-core
CPU runs in about an hour;
`paper`: the paper's setup (1-8 digits, ood 9-10) from 0.86M to 85M parameters,
three seeds each, for an accelerator.
"""

from scratchpad import errors


def get_sweep(arg=None):
  if arg in (None, "laptop"):
    return dict(
        config="configs/addition.py",
        args="laptop",
        axes=dict(size=["nano", "tiny", "mini", "small"], format=["direct", "scratchpad"], seed=[0]),
        overrides={"train.steps": 1500, "eval.max_examples": 1000},
    )
  if arg == "paper":
    return dict(
        config="configs/addition.py",
        args="paper",
        axes=dict(size=["tiny", "small", "medium", "base", "130m"], format=["direct", "scratchpad"],
                  seed=[0, 1, 2]),
        overrides={},
    )
  raise errors.InputError(f"unknown sweep variant {arg!r} in configs/sweeps/addition_sizes.py; choose laptop or paper")
