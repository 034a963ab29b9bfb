"""Time jaxloss's classification/regression losses against optax's, with a memory-floor kernel.

Each timed function is a jitted `jax.value_and_grad` (w.r.t. the logits) of the loss summed over
all elements. All functions run round-robin (A, B, floor, A, B, floor, ...) after one warm-up
call each, so machine noise hits them alike; times are medians over `--repeats` runs, each
blocked until its results are ready. Before timing, each pair's loss sums on float32 inputs are
checked to agree (rtol 1e-4, atol 1e-5), so no pair compares different maths. The floor kernel is
`sum(logits * labels)`: one multiply-add per element.

    python benchmarks/losses_vs_optax.py                   # < 1 minute on 2 CPU cores
    python benchmarks/losses_vs_optax.py --dtype bfloat16  # jaxloss computes in float32
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4096, help="batch size N")
    parser.add_argument("--classes", type=int, default=256, help="classes C")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per function (median)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    return parser.parse_args()


def focal(fn):
    return lambda x, y: fn(x, y, alpha=0.25, gamma=2.0)


# name -> (jaxloss loss, optax loss, which labels: "binary", "onehot" or "int")
PAIRS = {
    "sigmoid_bce": (
        jaxloss.sigmoid_binary_cross_entropy,
        optax.sigmoid_binary_cross_entropy,
        "binary",
    ),
    "softmax_ce": (jaxloss.softmax_cross_entropy, optax.softmax_cross_entropy, "onehot"),
    "softmax_ce_int": (
        jaxloss.softmax_cross_entropy_with_integer_labels,
        optax.softmax_cross_entropy_with_integer_labels,
        "int",
    ),
    "sigmoid_focal": (focal(jaxloss.sigmoid_focal_loss), focal(optax.sigmoid_focal_loss), "binary"),
    "mse": (jaxloss.mse, lambda x, y: jnp.mean(optax.squared_error(x, y)), "binary"),
}


def summed(loss):
    return lambda x, y: jnp.sum(loss(x, y))


def timed(fn, *args) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def main() -> None:
    args = parse_args()
    dtype = jnp.dtype(args.dtype)
    n, c = args.rows, args.classes
    k_logits, k_binary, k_int = jax.random.split(jax.random.key(0), 3)
    logits32 = 3.0 * jax.random.normal(k_logits, (n, c), jnp.float32)
    int_labels = jax.random.randint(k_int, (n,), 0, c)
    labels32 = {
        "binary": jax.random.bernoulli(k_binary, 0.3, (n, c)).astype(jnp.float32),
        "onehot": jax.nn.one_hot(int_labels, c, dtype=jnp.float32),
        "int": int_labels,
    }
    logits = logits32.astype(dtype)
    labels = {k: v if k == "int" else v.astype(dtype) for k, v in labels32.items()}

    print(f"jax {jax.__version__}, optax {optax.__version__}, device {jax.devices()[0]}")
    print(f"logits ({n}, {c}) {dtype.name}; timing value_and_grad of the loss sum, w.r.t. logits")

    # Same maths: loss sums on float32 inputs must agree.
    for name, (ours, theirs, kind) in PAIRS.items():
        a, b = (float(jax.jit(summed(f))(logits32, labels32[kind])) for f in (ours, theirs))
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=name)

    def vg(loss):
        return jax.jit(jax.value_and_grad(summed(loss)))

    jobs = {"floor": (vg(lambda x, y: x * y), labels["binary"])}
    for name, (ours, theirs, kind) in PAIRS.items():
        jobs[f"{name}/jaxloss"] = (vg(ours), labels[kind])
        jobs[f"{name}/optax"] = (vg(theirs), labels[kind])
    for fn, y in jobs.values():  # warm-up: compile and run once
        jax.block_until_ready(fn(logits, y))

    times = {name: [] for name in jobs}
    for _ in range(args.repeats):
        for name, (fn, y) in jobs.items():
            times[name].append(timed(fn, logits, y))
    ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}

    floor = ms["floor"]
    print(f"\nmedian of {args.repeats} interleaved runs; floor kernel {floor:.3f} ms\n")
    header = f"{'loss':<16}{'jaxloss ms':>12}{'optax ms':>12}{'optax/jaxloss':>15}"
    print(header + f"{'jaxloss/floor':>15}{'optax/floor':>13}")
    for name in PAIRS:
        ours, theirs = ms[f"{name}/jaxloss"], ms[f"{name}/optax"]
        print(
            f"{name:<16}{ours:>12.3f}{theirs:>12.3f}{theirs / ours:>14.2f}x"
            f"{ours / floor:>14.2f}x{theirs / floor:>12.2f}x"
        )


if __name__ == "__main__":
    main()
