"""Edge of stability: full-batch gradient descent at a few learning rates η, with the sharpness
λ_max (top Hessian eigenvalue) against 2/η and the one-step Taylor ratio along training.

Cohen et al., "Gradient descent on neural networks typically occurs at the edge of stability"
(ICLR 2021), Fig. 1: the sharpness rises during training (progressive sharpening) until it
reaches 2/η, then hovers there while the loss keeps falling, non-monotonically. The one-step
Taylor ratio `ΔL / (−η‖g‖²)` sits at 1 (first order holds) until λ_max reaches 2/η, then drops
to about 0 (= 1 − ηλ/2 along the top eigenvector). Setting: MSE on one-hot targets of 256 spiral
points, a tanh MLP [2, 64, 64, 3] (the paper's appendix uses MSE on tanh networks).

    python experiments/edge_of_stability.py --help

Writes `<out>/edge_of_stability.json` and, when matplotlib is installed (`pip install -e
".[plot]"`), `<out>/edge_of_stability.png`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import _common  # experiments/_common.py: options, JSON + PNG output, lazy matplotlib
import jax
import numpy as np

import jaxloss

QUICK = {"samples": 64, "hidden": 16, "steps": 300, "monitor_every": 25}
# λ_max·η within this of 2 counts as hovering at the edge.
EDGE_BAND = 0.2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=256, help="spiral points (default 256)")
    parser.add_argument("--hidden", type=int, default=64, help="hidden units per layer (64)")
    parser.add_argument("--steps", type=int, default=6000, help="gradient steps (default 6000)")
    parser.add_argument(
        "--learning-rates",
        type=lambda s: [float(v) for v in s.split(",")],
        default=[0.1, 0.2, 0.3],
        help="comma-separated η (default 0.1,0.2,0.3)",
    )
    parser.add_argument(
        "--monitor-every", type=int, default=50, help="record λ_max every k steps (50)"
    )
    return _common.parse(parser, QUICK, argv, name="edge_of_stability")


def _median(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else None


def edge_summary(
    eta: float, steps: np.ndarray, sharpness: np.ndarray, ratio: np.ndarray, losses: np.ndarray
) -> dict:
    """Where λ_max first reaches 2/η, and how sharpness, Taylor ratio and loss behave before
    and after."""
    lam_eta = sharpness * eta
    reached = np.flatnonzero(lam_eta >= 2)
    edge = int(steps[reached[0]]) if reached.size else None
    after = steps >= edge if edge is not None else np.zeros(steps.shape, bool)
    rises = np.diff(losses) > 0  # rises[t]: the loss went up at step t
    hover = _median(lam_eta[after])
    return {
        "edge_step": edge,
        "sharpness_times_eta_after_edge": hover,
        "first_order_ratio_before_edge": _median(ratio[~after]),
        "first_order_ratio_after_edge": _median(ratio[after]),
        "loss_increases_after_edge": int(rises[edge:].sum()) if edge is not None else 0,
        "edge_of_stability": hover is not None and abs(hover - 2) <= EDGE_BAND,
    }


def run(args: argparse.Namespace) -> dict:
    """One `jaxloss.fit(..., monitor_every=k)` per η (one compilation: η is traced)."""
    inputs, labels = jaxloss.spirals(args.samples, classes=3, noise=0.1, key=0)
    targets = jax.nn.one_hot(labels, 3)
    sizes = [inputs.shape[-1], args.hidden, args.hidden, 3]
    init_fn, apply_fn = jaxloss.mlp(sizes)  # tanh hidden layers
    loss = jaxloss.objective(apply_fn, jaxloss.mse)
    params = _common.replicate(args, init_fn(jax.random.key(1)))
    inputs, targets = _common.place(args, inputs, targets, option="--samples")
    setting = (
        f"full-batch gradient descent, MSE on one-hot targets of {args.samples} spiral points "
        f"(3 classes), tanh MLP {sizes}, {args.steps} steps, λ_max every "
        f"{args.monitor_every} steps"
    )
    print(setting)
    out: dict = {
        "args": _common.arguments(args),
        "setting": setting,
        "learning_rates": list(args.learning_rates),
        "two_over_eta": [2 / eta for eta in args.learning_rates],
    }
    rows = []
    for eta in args.learning_rates:
        print(f"η = {eta:g} (2/η = {2 / eta:.4g}) ...", flush=True)
        start = time.perf_counter()
        result = jaxloss.fit(
            loss,
            params,
            inputs,
            targets,
            learning_rate=eta,
            steps=args.steps,
            monitor_every=args.monitor_every,
            progress=not args.no_progress,
        )
        saved = result.to_dict()  # strict JSON: NaN -> None
        seconds = time.perf_counter() - start
        monitor = result.monitor
        steps = np.asarray(monitor.steps)
        sharpness = np.asarray(monitor.sharpness, np.float64)
        ratio = np.asarray(monitor.first_order_ratio, np.float64)
        losses = np.asarray(result.losses, np.float64)
        top = np.nanmax(sharpness) if np.isfinite(sharpness).any() else np.nan
        row = {
            **saved["monitor"],
            "losses": saved["losses"],
            "final_loss": saved["final_loss"],
            "diverged_at": saved["diverged_at"],
            "max_sharpness_times_eta": float(top * eta) if np.isfinite(top) else None,
            "seconds": seconds,
            **edge_summary(eta, steps, sharpness, ratio, losses),
        }
        rows.append(row)
        print(f"η = {eta:g}: done in {seconds:.1f} s (compilation included)", flush=True)
    # One list per key, one entry per η.
    out.update({key: [row[key] for row in rows] for key in rows[0]})
    return out


def table(result: dict) -> str:
    def fmt(value, spec):  # spec "9.3f": None as "-" in the same width
        return (
            format("-", ">" + spec.split(".")[0].rstrip("d"))
            if value is None
            else format(value, spec)
        )

    lines = [
        f"{'η':>6} {'2/η':>7} {'λ_max(0)':>9} {'max λη':>7} {'edge at':>8} {'λη after':>9} "
        f"{'ratio before':>13} {'ratio after':>12} {'loss rises':>11} {'final loss':>11}"
    ]
    for i, eta in enumerate(result["learning_rates"]):
        lines.append(
            f"{eta:6.3g} {result['two_over_eta'][i]:7.3g} "
            f"{fmt(result['sharpness'][i][0], '9.3f')} "
            f"{fmt(result['max_sharpness_times_eta'][i], '7.3f')} "
            f"{fmt(result['edge_step'][i], '8d')} "
            f"{fmt(result['sharpness_times_eta_after_edge'][i], '9.3f')} "
            f"{fmt(result['first_order_ratio_before_edge'][i], '13.3f')} "
            f"{fmt(result['first_order_ratio_after_edge'][i], '12.3f')} "
            f"{result['loss_increases_after_edge'][i]:11d} "
            f"{fmt(result['final_loss'][i], '11.4f')}"
        )
    lines.append(
        "λη after: median of λ_max·η from the edge on; ratio: median one-step ΔL/(−η‖g‖²) "
        "before / after the edge; loss rises: steps after the edge where the loss went up"
    )
    return "\n".join(lines)


def plot(result: dict, path: Path) -> bool:
    """Per η one row: loss, sharpness with 2/η, Taylor ratio; False without matplotlib."""
    plt = _common.pyplot()
    if plt is None:
        return False
    etas = result["learning_rates"]
    fig, axes = plt.subplots(len(etas), 3, figsize=(13, 3 * len(etas)), squeeze=False)
    for i, eta in enumerate(etas):
        steps = np.asarray(result["steps"][i])
        losses = np.array(result["losses"][i], dtype=np.float64)  # None -> NaN
        sharpness = np.array(result["sharpness"][i], dtype=np.float64)
        ratio = np.array(result["first_order_ratio"][i], dtype=np.float64)
        left, middle, right = axes[i]
        left.plot(losses, lw=0.8)
        left.set(yscale="log", ylabel=f"η = {eta:g}\ntraining loss")
        middle.plot(steps, sharpness, ".-", ms=2, lw=0.8, label="λ_max")
        middle.axhline(2 / eta, color="r", ls="--", lw=1, label="2/η")
        middle.set(ylabel="sharpness")
        right.plot(steps, ratio, ".-", ms=2, lw=0.8, color="g")
        right.axhline(1, color="gray", ls=":", lw=1)
        right.set(ylabel="ΔL / (−η‖g‖²)", ylim=(-0.5, 1.5))
        edge = result["edge_step"][i]
        for ax in (left, middle, right):
            if edge is not None:
                ax.axvline(edge, color="r", lw=0.5, alpha=0.5)
        if i == 0:
            left.set_title("loss (falls, non-monotonically)")
            middle.set_title("sharpness rises to 2/η, then hovers")
            right.set_title("one-step Taylor ratio (1 = first order)")
            middle.legend(fontsize=8)
        if i == len(etas) - 1:
            for ax in (left, middle, right):
                ax.set_xlabel("step")
    return _common.save(fig, path, dpi=110)


def main(argv: list[str] | None = None) -> dict:
    return _common.main("edge_of_stability", parse_args(argv), run, table, plot)


if __name__ == "__main__":
    main()
