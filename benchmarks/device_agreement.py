"""Do 1, 2, 4, … devices give what one device gives? The largest |difference| per quantity.

    python benchmarks/device_agreement.py              # 8 simulated CPU devices if no accelerator
    python benchmarks/device_agreement.py --devices 4

Each quantity is computed once on plain arrays (one device, the reference) and once per device
count d with the data split over d devices (`jaxloss.shard_batch`, params `jaxloss.replicate`-d):
the objective, its gradient, a 50-step full-batch `fit` (losses and parameters), a minibatch `fit`,
a `sweep` with sharded data (data parallelism) and one with `mesh=` (each device trains whole
runs), and a `taylor_check`. The only difference allowed is float32 roundoff of sums taken in
another order. tests/multidevice/ asserts these numbers.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Sequence

import jax
import numpy as np

import jaxloss

STEPS = 50
RATES = (0.1, 1.0, 3.0)
TAYLOR_RATES = (1e-2, 0.1, 1.0)
QUANTITIES = (
    "objective",
    "gradient",
    "fit losses",
    "fit params",
    "fit minibatch losses",
    "sweep losses (data parallel)",
    "sweep losses (runs on devices)",
    "taylor_check actual ΔL",
)


@functools.cache  # one objective function: each sharding compiles once
def problem():
    """64 three-armed spiral points, an MLP 2 -> 8 -> 3, cross entropy."""
    x, y = jaxloss.spirals(64, classes=3, key=0)
    init_fn, apply_fn = jaxloss.mlp([2, 8, 3])
    f = jaxloss.objective(apply_fn, jaxloss.softmax_cross_entropy_with_integer_labels)
    return f, init_fn, x, y


def quantities(mesh: jax.sharding.Mesh | None) -> dict[str, object]:
    """Every quantity of QUANTITIES: on plain arrays (`mesh` None) or with the data split over
    `mesh`."""
    f, init_fn, x, y = problem()
    params = init_fn(jax.random.key(0))
    plain = (x, y)
    if mesh is not None:
        params, (x, y) = jaxloss.replicate(mesh, params), jaxloss.shard_batch(mesh, x, y)
    value, grad = jax.jit(jax.value_and_grad(f))(params, x, y)
    fit = jaxloss.fit(f, params, x, y, learning_rate=0.5, steps=STEPS)
    minibatch = jaxloss.fit(f, params, x, y, learning_rate=0.5, steps=STEPS, batch_size=16, key=1)
    sweep = {"learning_rates": RATES, "steps": STEPS, "seeds": 2, "init_fn": init_fn}
    return {
        "objective": value,
        "gradient": grad,
        "fit losses": fit.losses,
        "fit params": fit.params,
        "fit minibatch losses": minibatch.losses,
        "sweep losses (data parallel)": jaxloss.sweep(f, None, x, y, **sweep).losses,
        "sweep losses (runs on devices)": jaxloss.sweep(f, None, *plain, mesh=mesh, **sweep).losses,
        "taylor_check actual ΔL": jaxloss.taylor_check(
            f, params, x, y, learning_rates=TAYLOR_RATES
        ).actual,
    }


def max_abs_difference(a, b) -> float:
    return max(
        float(np.max(np.abs(np.asarray(u, np.float64) - np.asarray(v, np.float64))))
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


def agreement(device_counts: Sequence[int]) -> dict[int, dict[str, float]]:
    """`{d: {quantity: max |value on d devices − value on one device|}}`."""
    reference = quantities(None)
    table = {}
    for devices in device_counts:
        values = quantities(jaxloss.data_parallel_mesh(devices))
        table[devices] = {q: max_abs_difference(values[q], reference[q]) for q in QUANTITIES}
    return table


def markdown(table: dict[int, dict[str, float]]) -> str:
    counts = list(table)
    lines = [
        "| quantity | " + " | ".join(f"{d} device{'s' * (d > 1)}" for d in counts) + " |",
        "|---|" + "---:|" * len(counts),
    ]
    for q in QUANTITIES:
        lines.append(f"| {q} | " + " | ".join(f"{table[d][q]:.1e}" for d in counts) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[int, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--devices", type=int, default=8, help="the most devices (simulated on a CPU; default 8)"
    )
    args = parser.parse_args(argv)
    jaxloss.data_parallel_mesh(args.devices, simulate_on_cpu=True)
    counts = sorted({d for d in (1, 2, 4, 8, 16, 32) if d < args.devices} | {args.devices})
    table = agreement(counts)
    kind = jax.devices()[0].device_kind
    simulated = (
        " (simulated: they share the host's cores)" if jax.default_backend() == "cpu" else ""
    )
    print(f"max |difference| from one device; {jax.device_count()} × {kind}{simulated}")
    print(markdown(table))
    return table


if __name__ == "__main__":
    main()
