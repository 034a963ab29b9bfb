"""Why back propagation made gradient descent practical: the time of one gradient of an MLP
objective by reverse mode (`jax.grad`), forward mode (`jax.jacfwd`, P Jacobian-vector products)
and central finite differences (2P evaluations) as the parameter count P grows.

Reverse mode costs a small constant times one evaluation of the objective, and one evaluation
costs ∝ P (every weight is used once per sample): reverse ∝ P. Forward mode and finite
differences need one pass per parameter: ∝ P². So the ratio forward / reverse grows ∝ P.
Baydin et al., "Automatic differentiation in machine learning: a survey", JMLR 2018, §3.
Setting: MSE of a tanh MLP [2, H, H, 1] on a fixed regression batch, H growing; each method
jitted, timed after one warm-up call, median of `--repeats` calls (`jaxloss.gradient_cost`).

    python experiments/backprop_cost.py --help

Writes `<out>/backprop_cost.json` and, when matplotlib is installed (`pip install -e
".[plot]"`), `<out>/backprop_cost.png`. On a CPU the smallest sizes are dominated by the fixed
cost of a call (microseconds), so the slopes are fitted on the largest sizes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _common  # experiments/_common.py: options, JSON + PNG output, lazy matplotlib
import jax
import numpy as np

import jaxloss

QUICK = {"widths": [2, 8, 32], "repeats": 3, "samples": 32}
METHODS = ("reverse", "forward", "finite_difference")
# The log-log slopes are fitted on this many of the largest sizes (call overhead hides the small).
FIT_SIZES = 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--widths",
        type=lambda s: [int(v) for v in s.split(",")],
        default=[2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
        help="comma-separated hidden widths H of the MLP [2, H, H, 1] (default 2,4,...,1024)",
    )
    parser.add_argument("--samples", type=int, default=64, help="batch size (default 64)")
    parser.add_argument(
        "--max-forward-params",
        type=int,
        default=5000,
        help="time forward mode and finite differences only up to this P (default 5000): "
        "beyond, they take minutes (P² cost, P tangents in memory); reverse mode goes on",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per method (5)")
    return _common.parse(parser, QUICK, argv, name="backprop_cost", trains=False)


def slope(parameters: np.ndarray, seconds: np.ndarray) -> float | None:
    """Least-squares slope of log(seconds) against log(P) over the FIT_SIZES largest sizes
    where the method was timed (NaN where it was not)."""
    timed = np.isfinite(seconds)
    x, y = np.log(parameters[timed][-FIT_SIZES:]), np.log(seconds[timed][-FIT_SIZES:])
    return float(np.polyfit(x, y, 1)[0]) if x.size >= 2 else None


def flat_mlp(sizes: list[int], seed: int) -> tuple[np.ndarray, callable]:
    """Initial parameters of `jaxloss.mlp(sizes)` as one flat vector θ (LeCun-normal weights,
    zero biases, drawn in NumPy) and the MSE objective f(θ, x, y) of that MLP.

    A flat θ drawn in NumPy keeps the compilations per size to the four `gradient_cost` times
    (a pytree would add op-by-op compilations of the init, ravel and unravel)."""
    rng = np.random.default_rng(seed)
    pieces, shapes = [], list(zip(sizes[:-1], sizes[1:]))
    for fan_in, fan_out in shapes:
        pieces += [rng.normal(size=fan_in * fan_out) / np.sqrt(fan_in), np.zeros(fan_out)]
    _, apply_fn = jaxloss.mlp(sizes)
    loss = jaxloss.objective(apply_fn, jaxloss.mse, reduction="mean")

    def objective(theta, inputs, targets):
        params, start = [], 0
        for fan_in, fan_out in shapes:
            end = start + fan_in * fan_out
            params.append(
                {"w": theta[start:end].reshape(fan_in, fan_out), "b": theta[end : end + fan_out]}
            )
            start = end + fan_out
        return loss(params, inputs, targets)

    return np.concatenate(pieces).astype(np.float32), objective


def run(args: argparse.Namespace) -> dict:
    """One `jaxloss.gradient_cost` per width (it compiles and times each method apart)."""
    # Any fixed regression batch will do (the values do not change the cost); NumPy draws it
    # without compiling a random-number kernel.
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(args.samples, 2)).astype(np.float32)
    targets = (inputs @ [[1.0], [-2.0]] + 0.1 * rng.normal(size=(args.samples, 1))).astype(
        np.float32
    )
    rows = []
    for width in _common.progress(args.widths, args, "widths"):
        theta, objective = flat_mlp([2, width, width, 1], seed=1)
        methods = METHODS if theta.size <= args.max_forward_params else ("reverse",)
        rows.append(
            jaxloss.gradient_cost(
                objective, theta, inputs, targets, methods=methods, repeats=args.repeats
            )
        )
    parameters = np.array([r["num_params"] for r in rows], np.float64)
    seconds = {  # NaN where a method was not timed (P above --max-forward-params)
        m: np.array([r["seconds"].get(m, np.nan) for r in rows]) for m in ("objective", *METHODS)
    }
    out: dict = {
        "args": _common.arguments(args),
        "setting": (
            f"MSE of a tanh MLP [2, H, H, 1], H in {list(args.widths)}, {args.samples} samples; "
            f"median of {args.repeats} calls after a warm-up, on {jax.devices()[0].platform}; "
            f"forward mode and finite differences up to P = {args.max_forward_params}"
        ),
        "widths": list(args.widths),
        "parameters": parameters.astype(int).tolist(),
        "objective_seconds": seconds["objective"].tolist(),
    }
    for m in METHODS:
        out[f"{m}_seconds"] = _common.finite_or_none(seconds[m])
    for m in ("forward", "finite_difference"):
        out[f"{m}_over_reverse"] = _common.finite_or_none(seconds[m] / seconds["reverse"])
    out["reverse_over_objective"] = (seconds["reverse"] / seconds["objective"]).tolist()
    out["slopes"] = {m: slope(parameters, seconds[m]) for m in ("objective", *METHODS)}
    # The three gradients agree: the speed is not bought with accuracy.
    out["max_abs_diff"] = {
        m: [r["max_abs_diff"].get(m) for r in rows] for m in ("forward", "finite_difference")
    }
    return out


def _fmt(value: float | None, spec: str) -> str:
    """`value` formatted by `spec`, or "-" in the same width (a method not timed)."""
    return format("-", ">" + spec.split(".")[0]) if value is None else format(value, spec)


def table(result: dict) -> str:
    lines = [
        f"{'H':>4} {'parameters':>10} {'objective s':>12} {'reverse s':>10} {'forward s':>10} "
        f"{'fin.diff s':>10} {'fwd/rev':>8} {'fd/rev':>8} {'rev/obj':>8}"
    ]
    for i, width in enumerate(result["widths"]):
        lines.append(
            f"{width:4d} {result['parameters'][i]:10d} {result['objective_seconds'][i]:12.2e} "
            f"{result['reverse_seconds'][i]:10.2e} {_fmt(result['forward_seconds'][i], '10.2e')} "
            f"{_fmt(result['finite_difference_seconds'][i], '10.2e')} "
            f"{_fmt(result['forward_over_reverse'][i], '8.1f')} "
            f"{_fmt(result['finite_difference_over_reverse'][i], '8.1f')} "
            f"{result['reverse_over_objective'][i]:8.2f}"
        )
    fitted = ", ".join(f"{m} {s:.2f}" for m, s in result["slopes"].items() if s is not None)
    lines.append(
        f"log-log slope of seconds vs P over the {FIT_SIZES} largest sizes: {fitted} "
        "(expected: objective and reverse 1, forward and finite differences 2)"
    )
    return "\n".join(lines)


def _series(result: dict, key: str) -> np.ndarray:
    return np.array(result[key], dtype=np.float64)  # None (not timed) -> NaN


def plot(result: dict, path: Path) -> bool:
    """Seconds against P (log-log) with P¹ and P² references; the ratios to reverse mode."""
    plt = _common.pyplot()
    if plt is None:
        return False
    p = np.asarray(result["parameters"], np.float64)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    styles = {
        "objective": ("one evaluation", "k", "o:"),
        "reverse": ("reverse mode (jax.grad)", "C0", "o-"),
        "forward": ("forward mode (jax.jacfwd)", "C1", "s-"),
        "finite_difference": ("finite differences (2P evaluations)", "C3", "^-"),
    }
    for m, (label, color, style) in styles.items():
        left.plot(p, _series(result, f"{m}_seconds"), style, color=color, ms=4, label=label)
    # Reference slopes through the largest timed size, drawn over the whole range of P (for
    # forward mode: an extrapolation beyond the sizes it was timed at).
    grid = np.geomspace(p[0], p[-1], 50)
    for m, power in (("reverse", 1), ("forward", 2)):
        seconds = _series(result, f"{m}_seconds")
        last = np.flatnonzero(np.isfinite(seconds))[-1]
        reference = seconds[last] * (grid / p[last]) ** power
        left.plot(grid, reference, "--", color=styles[m][1], lw=0.8, label=f"∝ P^{power}")
    left.set(
        xscale="log",
        yscale="log",
        xlabel="parameters P (log)",
        ylabel="seconds per gradient, median (log)",
        title="time of one gradient",
    )
    left.legend(fontsize=8)
    for m in ("forward", "finite_difference"):
        ratio = _series(result, f"{m}_over_reverse")
        right.plot(p, ratio, "o-", color=styles[m][1], ms=4, label=f"{m} / reverse")
    right.plot(
        p, result["reverse_over_objective"], "o:", color="k", ms=4, label="reverse / one evaluation"
    )
    ratio = _series(result, "forward_over_reverse")
    last = np.flatnonzero(np.isfinite(ratio))[-1]
    right.plot(grid, ratio[last] * grid / p[last], "--", color="gray", lw=0.8, label="∝ P")
    right.set(
        xscale="log",
        yscale="log",
        xlabel="parameters P (log)",
        ylabel="time ratio (log)",
        title="cost relative to reverse mode",
    )
    right.legend(fontsize=8)
    fig.suptitle(
        "Back propagation: a gradient for a few evaluations' cost; forward mode and finite "
        "differences pay a pass per parameter (cost ∝ P²)"
    )
    return _common.save(fig, path, dpi=120)


def main(argv: list[str] | None = None) -> dict:
    return _common.main("backprop_cost", parse_args(argv), run, table, plot)


if __name__ == "__main__":
    main()
