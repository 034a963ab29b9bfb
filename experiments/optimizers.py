"""How sensitive is each optimizer to the learning rate? Final training loss against η for SGD,
SGD with momentum 0.9 and Adam on the same spirals MLP, one compiled sweep per optimizer.

    python experiments/optimizers.py --help

Writes `<out>/optimizers.json` and, when matplotlib is installed (`pip install -e ".[plot]"`),
`<out>/optimizers.png`. A learning rate is "stable" for an optimizer when no seed diverged and
the mean final loss over seeds is below the initial loss.
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import _common  # experiments/_common.py: options, JSON + PNG output, lazy matplotlib
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss

# name -> a function of the learning rate giving an optax.GradientTransformation
OPTIMIZERS = {
    "sgd": optax.sgd,
    "momentum": functools.partial(optax.sgd, momentum=0.9),
    "adam": optax.adam,
}
QUICK = {"samples": 128, "hidden": 16, "steps": 150, "rates": 6, "seeds": 1}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=512, help="spiral points (default 512)")
    parser.add_argument("--hidden", type=int, default=32, help="hidden units per layer (32)")
    parser.add_argument("--steps", type=int, default=2000, help="steps per run (default 2000)")
    parser.add_argument("--rates", type=int, default=16, help="learning rates, log-spaced (16)")
    parser.add_argument("--min-rate", type=float, default=1e-4, help="smallest rate (1e-4)")
    parser.add_argument("--max-rate", type=float, default=30.0, help="largest rate (30)")
    parser.add_argument("--seeds", type=int, default=2, help="initialisations per rate (2)")
    return _common.parse(parser, QUICK, argv, name="optimizers")


def stable_range(rates: np.ndarray, final: np.ndarray, initial: float) -> list[float] | None:
    """[smallest, largest] rate whose seeds all stayed finite with a mean final loss below the
    initial loss (None if no rate is stable)."""
    with np.errstate(invalid="ignore"):
        ok = np.all(np.isfinite(final), axis=1) & (final.mean(axis=1) < initial)
    return [float(rates[ok].min()), float(rates[ok].max())] if ok.any() else None


def run(args: argparse.Namespace) -> dict:
    """One `jaxloss.sweep` (all rates × seeds in one compiled program) per optimizer."""
    data_key = jax.random.key(0)
    inputs, labels = jaxloss.spirals(args.samples, classes=3, noise=0.1, key=data_key)
    sizes = [inputs.shape[-1], args.hidden, args.hidden, 3]
    init_fn, apply_fn = jaxloss.mlp(sizes)
    loss = jaxloss.objective(
        apply_fn, jaxloss.softmax_cross_entropy_with_integer_labels, reduction="mean"
    )
    rates = jnp.geomspace(args.min_rate, args.max_rate, args.rates)
    print(
        f"data: {args.samples} spiral points, 3 classes; model: MLP {sizes}; "
        f"{args.rates} learning rates x {args.seeds} seeds x {args.steps} steps per optimizer"
    )
    out = {
        "args": _common.arguments(args),
        "optimizers": list(OPTIMIZERS),
        "learning_rates": np.asarray(rates).tolist(),
        "final_losses": {},
        "diverged_at": {},
        "initial_loss": None,
        "best_learning_rate": {},
        "best_final_loss": {},
        "stable_range": {},
        "seconds": {},
    }
    for name, optimizer in OPTIMIZERS.items():
        print(f"{name}: sweeping ...", flush=True)
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
            optimizer=optimizer,
            progress=not args.no_progress,
            **_common.sweep_options(args),
        )
        final = np.asarray(result.final_losses, np.float64)  # (K, S), NaN where diverged
        seconds = time.perf_counter() - start
        print(f"{name}: done in {seconds:.1f} s (compilation included)", flush=True)
        # Every rate starts from the same S initialisations: the initial loss is their mean.
        initial = float(np.mean(np.asarray(result.losses)[0, :, 0]))
        try:
            best = result.best()  # lowest mean final loss over seeds, no seed diverged
            best_loss = float(final[np.asarray(rates) == best].mean())
        except ValueError:  # every rate diverged
            best = best_loss = None
        out["initial_loss"] = initial
        saved = result.to_dict()  # strict JSON: NaN -> None
        out["final_losses"][name] = saved["final_losses"]
        out["diverged_at"][name] = saved["diverged_at"]
        out["best_learning_rate"][name] = best
        out["best_final_loss"][name] = best_loss
        out["stable_range"][name] = stable_range(np.asarray(rates), final, initial)
        out["seconds"][name] = seconds
    return out


def table(result: dict) -> str:
    """optimizer, best η, best final loss (mean over seeds), stable range of η."""
    lines = [
        f"initial loss {result['initial_loss']:.4f}",
        f"{'optimizer':<10} {'best η':>10} {'best final loss':>16}   stable η (no divergence, "
        "loss below initial)",
    ]
    for name in result["optimizers"]:
        best, loss = result["best_learning_rate"][name], result["best_final_loss"][name]
        span = result["stable_range"][name]
        span_text = "none" if span is None else f"{span[0]:.3g} – {span[1]:.3g}"
        best_text = "none" if best is None else f"{best:.3g}"
        loss_text = "none" if loss is None else f"{loss:.4f}"
        lines.append(f"{name:<10} {best_text:>10} {loss_text:>16}   {span_text}")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> bool:
    """Final loss against η, one line per optimizer (mean over seeds, as `best`); False without
    matplotlib."""
    plt = _common.pyplot()
    if plt is None:
        return False
    rates = np.asarray(result["learning_rates"])
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name in result["optimizers"]:
        final = np.array(result["final_losses"][name], dtype=np.float64)  # None -> NaN
        (line,) = ax.plot(rates, final.mean(axis=1), "o-", ms=3, label=name)
        best = result["best_learning_rate"][name]
        if best is not None:
            ax.plot(best, result["best_final_loss"][name], "*", ms=12, color=line.get_color())
    ax.axhline(result["initial_loss"], color="gray", lw=0.8, ls="--", label="initial loss")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="learning rate η",
        ylabel="final training loss (mean over seeds)",
        title="How sensitive is each optimizer to η? (★ best)",
    )
    # Diverging runs reach losses of hundreds; keep the useful range readable.
    ax.set_ylim(top=10 * result["initial_loss"])
    ax.legend()
    return _common.save(fig, path, dpi=120)


def main(argv: list[str] | None = None) -> dict:
    return _common.main("optimizers", parse_args(argv), run, table, plot)


if __name__ == "__main__":
    main()
