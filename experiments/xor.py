"""XOR: a linear model cannot fit it, an MLP with a nonlinear activation can, and an MLP whose
activation is the identity is a linear model again.

Minsky & Papert, Perceptrons (1969): no line separates {01, 10} from {00, 11}, so a linear
classifier gets at most 3 of the 4 points right (accuracy ≤ 0.75). Under the mean sigmoid cross
entropy its best loss is ln 2 ≈ 0.693 (logit 0 everywhere: the loss is convex and, by the
symmetry of XOR, its gradient vanishes there). A tanh MLP [2, h, 1] bends the boundary and fits
all four points; the same MLP with the identity activation composes linear maps, which is linear,
and stays at ln 2. Every model: full-batch gradient descent from several seeds, one
`jaxloss.sweep` (one compilation) per model; the decision regions drawn are seed 0's.

    python experiments/xor.py --help

Writes `<out>/xor.json` and, when matplotlib is installed (`pip install -e ".[plot]"`),
`<out>/xor.png`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import _common  # experiments/_common.py: options, JSON + PNG output, lazy matplotlib
import jax
import jax.numpy as jnp
import numpy as np

import jaxloss

QUICK = {"steps": 300, "seeds": 1, "grid": 21}
MODELS = ("linear", "mlp", "mlp_identity")
LABELS = {
    "linear": "linear",
    "mlp": "MLP, tanh",
    "mlp_identity": "MLP, identity",
}
# The best mean sigmoid cross entropy a linear model reaches on XOR (see the module docstring).
LINEAR_OPTIMUM = math.log(2.0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=8, help="hidden units of the MLPs (8)")
    parser.add_argument("--steps", type=int, default=2000, help="gradient steps (default 2000)")
    parser.add_argument("--learning-rate", type=float, default=1.0, help="η (default 1.0)")
    parser.add_argument("--seeds", type=int, default=20, help="initialisations per model (20)")
    parser.add_argument("--grid", type=int, default=101, help="decision-region grid side (101)")
    return _common.parse(parser, QUICK, argv, name="xor")


def bce(logit: jax.Array, target: jax.Array) -> jax.Array:
    """Sigmoid cross entropy of one sample (its single output summed to a scalar)."""
    return jaxloss.sigmoid_binary_cross_entropy(logit, target).sum()


def models(hidden: int) -> dict:
    """name -> (init_fn, apply_fn)."""
    return {
        "linear": jaxloss.linear(2, 1),
        "mlp": jaxloss.mlp([2, hidden, 1]),  # tanh, the default activation
        "mlp_identity": jaxloss.mlp([2, hidden, 1], activation=lambda h: h),
    }


def run(args: argparse.Namespace) -> dict:
    """One `jaxloss.sweep` over the seeds per model; accuracies and seed 0's decision regions."""
    inputs, targets = jaxloss.xor()
    labels = np.asarray(targets[:, 0]) > 0.5
    axis = np.linspace(-0.5, 1.5, args.grid)
    grid = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)  # rows: y, columns: x
    points = jnp.concatenate([inputs, jnp.asarray(grid, inputs.dtype)])
    print(
        f"XOR, mean sigmoid cross entropy, full-batch GD η = {args.learning_rate:g}, "
        f"{args.steps} steps, {args.seeds} seeds; MLPs [2, {args.hidden}, 1]"
    )
    out = {
        "args": _common.arguments(args),
        "models": list(MODELS),
        "inputs": np.asarray(inputs).tolist(),
        "targets": labels.astype(int).tolist(),
        "linear_optimum_loss": LINEAR_OPTIMUM,
        "grid": axis.tolist(),
    }
    built = models(args.hidden)
    trained, results = {}, {}
    for name, (init_fn, apply_fn) in _common.progress(
        built.items(), args, "models", total=len(MODELS)
    ):
        loss = jaxloss.objective(apply_fn, bce, reduction="mean")
        result = jaxloss.sweep(
            loss,
            None,
            inputs,
            targets,
            learning_rates=[args.learning_rate],
            steps=args.steps,
            seeds=args.seeds,
            init_fn=init_fn,
            **_common.sweep_options(args),
        )
        trained[name] = jax.tree.map(lambda leaf: leaf[0], result.params)  # (S, ...) per leaf
        results[name] = result
    # Every model's logits on the 4 points and the grid, all seeds, in one compiled program.
    logits_of = jax.jit(
        lambda params: {
            name: jax.vmap(built[name][1], in_axes=(0, None))(params[name], points)[..., 0]
            for name in MODELS
        }
    )
    all_logits = logits_of(trained)
    for name in MODELS:
        logits, result = np.asarray(all_logits[name], np.float64), results[name]
        accuracy = ((logits[:, :4] > 0) == labels).mean(axis=1)
        final = np.asarray(result.final_losses[0], np.float64)
        out["steps"], curve = _common.downsample(result.losses[0])
        out[name] = {
            "final_loss": _common.finite_or_none(final[0]),
            "accuracy": float(accuracy[0]),
            "initial_loss": float(result.losses[0, 0, 0]),
            "final_losses": _common.finite_or_none(final),
            "accuracies": accuracy.tolist(),
            "seeds_fitted": int((accuracy == 1.0).sum()),
            "curves": curve,
            "params": jax.tree.map(lambda leaf: np.asarray(leaf[0]).tolist(), trained[name]),
            "probability_grid": _common.finite_or_none(
                np.asarray(jax.nn.sigmoid(all_logits[name][0, 4:])).reshape(args.grid, args.grid)
            ),
        }
    return out


def table(result: dict) -> str:
    """model, seed 0's final loss and accuracy, how many seeds reached accuracy 1.0."""
    seeds = result["args"]["seeds"]
    lines = [
        f"best linear loss ln 2 = {result['linear_optimum_loss']:.4f}",
        f"{'model':<26} {'final loss':>10} {'accuracy':>9} {'seeds with accuracy 1.0':>24}",
    ]
    for name in result["models"]:
        row = result[name]
        loss = "nan" if row["final_loss"] is None else f"{row['final_loss']:.4f}"
        fitted = f"{row['seeds_fitted']}/{seeds}"
        lines.append(f"{LABELS[name]:<26} {loss:>10} {row['accuracy']:>9.2f} {fitted:>24}")
    lines.append(
        "(at loss ln 2 the logits are ~0: p ≈ ½ on every point, and which side of ½ roundoff "
        "puts each point on decides the accuracy)"
    )
    return "\n".join(lines)


def plot(result: dict, path: Path) -> bool:
    """Loss curves (every seed) and seed 0's decision regions; False without matplotlib."""
    plt = _common.pyplot()
    if plt is None:
        return False
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    curves_ax = axes[0]
    inputs = np.asarray(result["inputs"])
    targets = np.asarray(result["targets"])
    axis = np.asarray(result["grid"])
    for i, name in enumerate(result["models"]):
        color = f"C{i}"
        curves = np.array(result[name]["curves"], dtype=np.float64)  # (seeds, points)
        for j, curve in enumerate(curves):
            curves_ax.plot(
                result["steps"], curve, color=color, lw=0.8, alpha=0.5,
                label=LABELS[name] if j == 0 else None,
            )  # fmt: skip
        ax = axes[i + 1]
        probability = np.array(result[name]["probability_grid"], dtype=np.float64)
        filled = ax.contourf(axis, axis, probability, levels=np.linspace(0, 1, 11), cmap="RdBu_r")
        spread = np.nanmax(np.abs(probability - 0.5))
        if spread > 0.01:
            ax.contour(axis, axis, probability, levels=[0.5], colors="k", linewidths=1)
        else:  # a boundary drawn through roundoff would be noise: say so instead
            ax.text(
                0.5,
                0.5,
                f"p ≈ 0.5 everywhere\n(max |p − ½| = {spread:.0e})",
                ha="center",
                va="center",
                fontsize=10,
                bbox={"fc": "w", "alpha": 0.8},
            )
        for label, marker in ((0, "o"), (1, "s")):
            chosen = inputs[targets == label]
            ax.scatter(
                chosen[:, 0], chosen[:, 1], marker=marker, s=90, edgecolors="k",
                c="tab:red" if label else "tab:blue", label=f"target {label}",
            )  # fmt: skip
        ax.set(
            xlabel="x₁",
            ylabel="x₂",
            aspect="equal",
            title=f"{LABELS[name]}: accuracy {result[name]['accuracy']:.2f}",
        )
        ax.title.set_fontsize(10)
        if i == 0:
            ax.legend(loc="upper center", fontsize=7)
    fig.colorbar(filled, ax=axes[-1], label="p(target 1) (seed 0)")
    curves_ax.axhline(
        result["linear_optimum_loss"], color="gray", ls="--", lw=1, label="ln 2 (best linear)"
    )
    curves_ax.set(
        yscale="log", xlabel="step", ylabel="training loss (log)", title="loss, every seed"
    )
    curves_ax.legend(fontsize=8)
    fig.suptitle(
        "XOR: no linear model fits it (accuracy ≤ 0.75, loss stuck at ln 2); a tanh MLP does; "
        "identity activations make the MLP linear again"
    )
    return _common.save(fig, path, dpi=120)


def main(argv: list[str] | None = None) -> dict:
    return _common.main("xor", parse_args(argv), run, table, plot)


if __name__ == "__main__":
    main()
