"""Compare learning rates: train one MLP classifier at many learning rates and seeds at once, and
set the best η beside two cheap estimates from a single starting point: the η from which one SGD
step raises the loss (Taylor check), and the LR range test's suggestion.

Setting: mean integer-label cross entropy of an MLP [2, 32, 32, 3] on 512 three-armed spiral
points; 16 log-spaced η in [1e-3, 30] × 3 seeds × 2000 full-batch SGD steps, all in one compiled
`jaxloss.sweep`. At seed 0's starting parameters (where those runs start): the Taylor check
(Nocedal & Wright, *Numerical Optimization* §2.2: the loss falls by ≈ η‖g‖² for small η and
starts to rise near η = 2‖g‖²/gᵀHg) and the LR range test (Smith, "Cyclical Learning Rates for
Training Neural Networks", WACV 2017: one run with η growing exponentially; the suggestion is
where the smoothed loss falls fastest). A run "blew up" when its loss ends non-finite or above
its initial loss; it "diverged" when the loss became non-finite.

    python experiments/lr_comparison.py --help

Writes `<out>/lr_comparison.json` and, when matplotlib is installed (`pip install -e ".[plot]"`),
`<out>/lr_comparison.png`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import _common  # experiments/_common.py: options, JSON + PNG output, lazy matplotlib
import jax
import jax.numpy as jnp
import numpy as np

import jaxloss

QUICK = {"samples": 128, "hidden": 16, "steps": 150, "rates": 6, "seeds": 1, "range_steps": 100}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=512, help="spiral points (default 512)")
    parser.add_argument("--classes", type=int, default=3, help="spiral arms / classes (default 3)")
    parser.add_argument("--hidden", type=int, default=32, help="hidden units per layer (32)")
    parser.add_argument("--steps", type=int, default=2000, help="SGD steps per run (default 2000)")
    parser.add_argument("--rates", type=int, default=16, help="learning rates, log-spaced (16)")
    parser.add_argument("--min-rate", type=float, default=1e-3, help="smallest rate (1e-3)")
    parser.add_argument("--max-rate", type=float, default=30.0, help="largest rate (30)")
    parser.add_argument("--seeds", type=int, default=3, help="initialisations per rate (3)")
    parser.add_argument(
        "--range-steps",
        type=int,
        default=500,
        help="steps of the LR range test over [min-rate, max-rate] (default 500)",
    )
    return _common.parse(parser, QUICK, argv, name="lr_comparison")


def blew_up(final: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """(K, S) bools: the final loss is not finite or above the run's initial loss."""
    with np.errstate(invalid="ignore"):
        return ~np.isfinite(final) | (final > initial)


def run(args: argparse.Namespace) -> dict:
    """The sweep, then the Taylor check and the LR range test at seed 0's starting parameters."""
    data_key, _ = jax.random.split(jax.random.key(0))
    inputs, labels = jaxloss.spirals(args.samples, classes=args.classes, noise=0.1, key=data_key)
    sizes = [inputs.shape[-1], args.hidden, args.hidden, args.classes]
    init_fn, apply_fn = jaxloss.mlp(sizes)
    loss = jaxloss.objective(
        apply_fn, jaxloss.softmax_cross_entropy_with_integer_labels, reduction="mean"
    )
    rates = jnp.geomspace(args.min_rate, args.max_rate, args.rates)
    print(
        f"data: {args.samples} spiral points, {args.classes} classes; model: MLP {sizes}; "
        f"{args.rates} learning rates x {args.seeds} seeds x {args.steps} steps in one "
        "compiled program",
        flush=True,
    )
    start = time.perf_counter()
    result = jaxloss.sweep(
        loss,
        None,
        inputs,
        labels,
        learning_rates=rates,
        steps=args.steps,
        seeds=args.seeds,
        init_fn=init_fn,
        progress=not args.no_progress,
        **_common.sweep_options(args),
    )
    losses = np.asarray(result.losses, np.float64)  # (K, S, steps)
    final = np.asarray(result.final_losses, np.float64)  # (K, S), NaN where diverged
    seconds = time.perf_counter() - start
    print(f"sweep done in {seconds:.1f} s (compilation included)", flush=True)
    try:
        best = result.best()  # lowest mean final loss over seeds, no seed diverged
    except ValueError:  # every rate diverged
        best = None

    # Both predictions start where seed 0's runs started (data-parallel with --devices).
    start_params = _common.replicate(args, result.initial(0))
    inputs, labels = _common.place(args, inputs, labels, option="--samples")
    report = jaxloss.taylor_check(loss, start_params, inputs, labels)
    range_test = jaxloss.lr_range_test(
        loss,
        start_params,
        inputs,
        labels,
        min_lr=args.min_rate,
        max_lr=args.max_rate,
        steps=args.range_steps,
    )
    steps, curves = _common.downsample(losses, 200)
    return {
        "args": _common.arguments(args),
        "learning_rates": np.asarray(rates).tolist(),
        "initial_loss": float(losses[0, 0, 0]),
        "final_losses": _common.finite_or_none(final),
        "blew_up": blew_up(final, losses[:, :, 0]).tolist(),
        "diverged_at": np.asarray(result.diverged_at).tolist(),
        "best_learning_rate": best,
        "steps": steps,
        "curves": curves,
        "taylor_check": report.to_dict(),
        "lr_range_test": {
            **range_test.to_dict(),
            "suggested_learning_rate": _common.finite_or_none(range_test.suggested),
        },
        "seconds": seconds,
    }


def _median(values: np.ndarray) -> np.ndarray:
    """Median over seeds (last axis) of the finite values; NaN where none is finite."""
    values = np.where(np.isfinite(values), values, np.nan)
    finite = np.isfinite(values).any(axis=-1)
    out = np.full(values.shape[:-1], np.nan)
    out[finite] = np.nanmedian(values[finite], axis=-1)
    return out


def _rate(value: float | None) -> str:
    return "none" if value is None else f"{value:.3g}"


def markers(result: dict) -> dict[str, float | None]:
    """The η each method picks: the sweep's best, the range test's suggestion, and where the
    Taylor check's one step starts to raise the loss (measured and predicted)."""
    taylor = result["taylor_check"]
    return {
        "sweep best": result["best_learning_rate"],
        "range test suggests": result["lr_range_test"]["suggested_learning_rate"],
        "Taylor: loss rises from": taylor["increase_from"],
        "Taylor: predicted 2‖g‖²/gᵀHg": taylor["predicted_increase_from"],
    }


def table(result: dict) -> str:
    """Per η: median final loss over seeds, runs that blew up, runs that diverged; then the η
    each method picks."""
    final = np.array(result["final_losses"], dtype=np.float64)  # None -> NaN
    seeds = final.shape[1]
    lines = [
        f"initial loss (seed 0) {result['initial_loss']:.4f}",
        f"{'learning rate':>14} {'final loss (median)':>20} {'blew up':>8} {'diverged':>9}",
    ]
    rows = zip(result["learning_rates"], _median(final), result["blew_up"], result["diverged_at"])
    for eta, median, up, at in rows:
        loss_text = "—" if np.isnan(median) else f"{median:.4f}"
        diverged = sum(step >= 0 for step in at)
        lines.append(f"{eta:14.4g} {loss_text:>20} {sum(up):>6}/{seeds} {diverged:>7}/{seeds}")
    lines.append("η picked by each method:")
    lines += [f"  {name:<30} {_rate(value)}" for name, value in markers(result).items()]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> bool:
    """Loss curves per η, final loss vs η with each method's η, the Taylor check, the range
    test; False without matplotlib."""
    plt = _common.pyplot()
    if plt is None:
        return False
    rates = np.asarray(result["learning_rates"])
    initial = result["initial_loss"]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    (curves_ax, final_ax), (taylor_ax, range_ax) = axes

    curves = np.array(result["curves"], dtype=np.float64)  # (K, S, points), None -> NaN
    colors = plt.cm.viridis(np.linspace(0, 1, len(rates)))
    for eta, runs, color in zip(rates, curves, colors):
        curves_ax.plot(
            result["steps"], _median(np.moveaxis(runs, 0, -1)), color=color, label=f"{eta:.2g}"
        )
    # Diverging rates reach losses of hundreds; keep the converging ones readable.
    curves_ax.set(
        xlabel="step",
        ylabel="training loss (median over seeds, log)",
        yscale="log",
        ylim=(None, 3 * initial),
        title="SGD at each η: too small crawls, too large blows up",
    )
    curves_ax.legend(fontsize=6, ncol=2, title="η")

    final = np.array(result["final_losses"], dtype=np.float64)
    up = np.array(result["blew_up"])
    median = _median(final)
    final_ax.plot(rates, median, "k.-", label="median over seeds")
    shown = up.any(axis=1) & np.isfinite(median)
    final_ax.plot(rates[shown], median[shown], "rx", ms=8, label="a seed blew up")
    final_ax.axhline(initial, color="gray", ls=":", lw=1, label="initial loss")
    styles = ["C0", "C1", "C3", "C3"]
    lines = ["-", "--", "-", ":"]
    for (name, value), color, ls in zip(markers(result).items(), styles, lines):
        if value is not None:
            final_ax.axvline(value, color=color, ls=ls, lw=1.2, label=f"{name} {value:.3g}")
    final_ax.set(
        xscale="log",
        yscale="log",
        xlabel="learning rate η (log)",
        ylabel=f"loss after {result['args']['steps']} steps (log)",
        title="Final loss vs η, and the η each method picks",
    )
    final_ax.legend(fontsize=7)

    taylor = result["taylor_check"]
    etas = np.asarray(taylor["learning_rates"], dtype=np.float64)
    for key, style, label in [
        ("actual", "k.", "|actual ΔL|"),
        ("predicted_first", "b-", "|−η‖g‖²| (first order)"),
        ("predicted_second", "g--", "|second order|"),
    ]:
        taylor_ax.loglog(etas, np.abs(np.array(taylor[key], np.float64)), style, label=label)
    for key, ls, label in [
        ("increase_from", "-", "loss rises from"),
        ("predicted_increase_from", ":", "2‖g‖²/gᵀHg"),
    ]:
        if taylor[key] is not None:
            taylor_ax.axvline(
                taylor[key], color="C3", ls=ls, lw=1.2, label=f"{label} {taylor[key]:.3g}"
            )
    taylor_ax.set(
        xlabel="learning rate η (log)",
        ylabel="|loss change| after one step (log)",
        title="Taylor check at seed 0's start: first order holds for small η",
    )
    taylor_ax.legend(fontsize=7)

    span = result["lr_range_test"]
    range_rates = np.asarray(span["learning_rates"], dtype=np.float64)
    range_ax.plot(
        range_rates, np.array(span["losses"], np.float64), color="0.6", lw=0.8, label="loss"
    )
    range_ax.plot(
        range_rates,
        np.array(span["smoothed_losses"], np.float64),
        "C1",
        label="smoothed (β = 0.98)",
    )
    if span["suggested_learning_rate"] is not None:
        range_ax.axvline(
            span["suggested_learning_rate"],
            color="C1",
            ls="--",
            lw=1.2,
            label=f"suggestion {span['suggested_learning_rate']:.3g}",
        )
    # The raw loss shoots up at the stop; the fall before it is what the suggestion reads.
    range_ax.set(
        xscale="log",
        yscale="log",
        ylim=(None, 3 * initial),
        xlabel="learning rate η of the step (log)",
        ylabel="training loss (log)",
        title=f"LR range test: one run, η growing over {len(range_rates)} steps",
    )
    range_ax.legend(fontsize=7)
    fig.suptitle(
        "Which learning rate? The sweep's best η lies below where one SGD step starts to raise "
        "the loss; the range test finds a usable η in one run",
        fontsize=10,
    )
    return _common.save(fig, path, dpi=120)


def main(argv: list[str] | None = None) -> dict:
    return _common.main("lr_comparison", parse_args(argv), run, table, plot)


if __name__ == "__main__":
    main()
