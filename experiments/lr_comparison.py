"""Compare learning rates: train one MLP classifier at many learning rates and seeds at once,
and set the outcome beside the Taylor check's prediction of where first-order theory breaks.

    python experiments/lr_comparison.py --help

Writes `<out>/lr_comparison.json` and, when matplotlib is installed (`pip install -e ".[plot]"`),
`<out>/lr_comparison.png`.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=512, help="spiral points (default 512)")
    parser.add_argument("--classes", type=int, default=3, help="spiral arms / classes (default 3)")
    parser.add_argument(
        "--hidden", type=int, default=32, help="hidden units per layer (default 32)"
    )
    parser.add_argument("--steps", type=int, default=2000, help="SGD steps per run (default 2000)")
    parser.add_argument("--rates", type=int, default=16, help="learning rates, log-spaced (16)")
    parser.add_argument("--min-rate", type=float, default=1e-3, help="smallest rate (1e-3)")
    parser.add_argument("--max-rate", type=float, default=30.0, help="largest rate (30)")
    parser.add_argument("--seeds", type=int, default=3, help="initialisations per rate (default 3)")
    parser.add_argument("--out", type=Path, default=Path("results"), help="output folder")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    key = jax.random.key(0)
    data_key, init_key = jax.random.split(key)
    inputs, labels = jaxloss.spirals(args.samples, classes=args.classes, noise=0.1, key=data_key)
    init_fn, apply_fn = jaxloss.mlp([inputs.shape[-1], args.hidden, args.hidden, args.classes])
    loss = jaxloss.objective(
        apply_fn, jaxloss.softmax_cross_entropy_with_integer_labels, reduction="mean"
    )
    params = init_fn(init_key)
    print(
        f"data: {inputs.shape[0]} spiral points, {args.classes} classes; model: MLP "
        f"{[inputs.shape[-1], args.hidden, args.hidden, args.classes]}"
    )

    print("Taylor check at the initial parameters ...")
    report = jaxloss.taylor_check(loss, params, inputs, labels)
    print(report.summary())

    learning_rates = jnp.geomspace(args.min_rate, args.max_rate, args.rates)
    print(
        f"training {args.rates} learning rates x {args.seeds} seeds x {args.steps} steps "
        "in one compiled program ..."
    )
    start = time.perf_counter()
    result = jaxloss.sweep(
        loss,
        None,
        inputs,
        labels,
        learning_rates=learning_rates,
        steps=args.steps,
        seeds=args.seeds,
        init_fn=init_fn,
        progress=not args.no_progress,
    )
    jax.block_until_ready(result.final_losses)
    seconds = time.perf_counter() - start
    print(f"done in {seconds:.1f} s (compilation included)")

    final = np.asarray(result.final_losses)
    diverged = np.asarray(result.diverged_at) >= 0
    print(f"{'learning rate':>14} {'final loss (median over seeds)':>32} {'diverged':>9}")
    for eta, row, div in zip(np.asarray(learning_rates), final, diverged):
        median = np.nanmedian(np.where(div, np.nan, row)) if not div.all() else math.nan
        print(f"{eta:14.4g} {median:32.4f} {int(div.sum()):>5}/{args.seeds}")
    best = result.best()
    print(f"best learning rate after {args.steps} steps: {best:.4g}")
    print(
        f"Taylor check at init: best single-step rate {report.best_learning_rate:.4g}, "
        f"quadratic model predicts {report.predicted_best:.4g}; loss rises from "
        f"{report.increase_from:.4g} (predicted {report.predicted_increase_from:.4g})"
    )

    summary = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "learning_rates": np.asarray(learning_rates).tolist(),
        "final_losses": np.where(np.isfinite(final), final, None).tolist(),
        "diverged_at": np.asarray(result.diverged_at).tolist(),
        "best_learning_rate": float(best),
        "seconds": seconds,
        "taylor_check": report.to_dict(),
    }
    json_path = args.out / "lr_comparison.json"
    json_path.write_text(json.dumps(summary, indent=2))
    print(f"wrote {json_path}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print('matplotlib is not installed: no figure (pip install -e ".[plot]")')
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    losses = np.asarray(result.losses)  # (K, S, steps)
    colors = plt.cm.viridis(np.linspace(0, 1, len(learning_rates)))
    for eta, curves, color in zip(np.asarray(learning_rates), losses, colors):
        left.plot(np.nanmedian(curves, axis=0), color=color, label=f"{eta:.2g}")
    left.set(
        xlabel="step",
        ylabel="training loss (median over seeds)",
        yscale="log",
        title="SGD at each learning rate",
    )
    # Diverging rates reach losses of hundreds; keep the converging ones readable.
    left.set_ylim(top=3 * report.loss)
    left.legend(fontsize=6, ncol=2, title="η")
    etas = np.asarray(report.learning_rates)
    right.loglog(etas, np.abs(report.actual), "k.", label="|actual ΔL|")
    right.loglog(etas, np.abs(report.predicted_first), "b-", label="|−η‖g‖²| (first order)")
    right.loglog(etas, np.abs(report.predicted_second), "g--", label="|second order|")
    right.axvline(report.predicted_increase_from, color="r", lw=0.8, label="2‖g‖²/gᵀHg")
    right.set(
        xlabel="learning rate η",
        ylabel="|loss change| after one step",
        title="Taylor check at initialisation",
    )
    right.legend(fontsize=7)
    fig.tight_layout()
    png_path = args.out / "lr_comparison.png"
    fig.savefig(png_path, dpi=120)
    print(f"wrote {png_path}")


if __name__ == "__main__":
    main()
