"""Which loss for a sigmoid output? MSE vs cross entropy from a confidently wrong start, and the
likelihood view: Gaussian NLL (= MSE) for continuous targets, Bernoulli NLL (= cross entropy) for
binary ones, and what goes wrong with the mismatched pairing.

1. Saturation. A logistic unit p = σ(wx + b) starts at w = −8 on 1-D data labelled y = [x > 0]
   (|x| in [0.5, 1.5]): every prediction is wrong with |z| ≥ 4. Per sample,
   dMSE/dz = 2(σ − y)σ(1 − σ) and dCE/dz = σ − y: the factor σ(1 − σ) ≤ e^{−4} makes MSE's
   gradient vanish where the sigmoid saturates, so gradient descent at the same η crawls for
   hundreds of steps under MSE and escapes in a few under cross entropy.
2. Likelihood. A continuous target y = wx + b + ε fitted by a linear model under the Gaussian NLL
   (σ = 1): the mean NLL is ½ MSE + ½ log 2π, so the fit is least squares; cross entropy on the
   same targets is NaN wherever y is outside [0, 1] (it is no likelihood there). A binary target
   y ~ Bernoulli(σ(4x − 1)) fitted under the Bernoulli NLL gives probabilities; under the
   Gaussian NLL (a linear output, the "linear probability model") it gives "probabilities"
   outside [0, 1] and a worse match to the true σ(4x − 1).

Reference: Bishop, Pattern Recognition and Machine Learning (2006), §4.3.2 and §5.2; Golik, Doetsch
& Ney, "Cross-entropy vs. squared error training" (Interspeech 2013).

    python experiments/mse_vs_cross_entropy.py --help

Writes `<out>/mse_vs_cross_entropy.json` and, when matplotlib is installed (`pip install -e
".[plot]"`), `<out>/mse_vs_cross_entropy.png`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import _common  # experiments/_common.py: options, JSON + PNG output, lazy matplotlib
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss

QUICK = {"steps": 100, "records": 20, "fit_steps": 100, "samples": 64}
LOSSES = ("mse", "cross_entropy")
LABELS = {"mse": "MSE on σ(z)", "cross_entropy": "cross entropy"}
INITIAL_WEIGHT = -8.0  # confidently wrong: |z| ≥ 4 on every sample
CONTINUOUS_LINE = (-0.8, 1.2)  # the continuous target: y = −0.8x + 1.2 + N(0, 0.5²)
TRUE_LOGIT = (4.0, -1.0)  # the binary target's P(y = 1 | x) = σ(4x − 1)
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000, help="saturation: GD steps (1000)")
    parser.add_argument("--learning-rate", type=float, default=1.0, help="saturation: η (1.0)")
    parser.add_argument(
        "--records", type=int, default=100, help="saturation: ‖∇L‖ measurements (100)"
    )
    parser.add_argument("--points", type=int, default=32, help="saturation: data points (32)")
    parser.add_argument(
        "--samples", type=int, default=500, help="likelihood: samples per data set (500)"
    )
    parser.add_argument("--fit-steps", type=int, default=2000, help="likelihood: GD steps (2000)")
    return _common.parse(parser, QUICK, argv, name="mse_vs_cross_entropy")


def mse_on_sigmoid(logit: jax.Array, target: jax.Array) -> jax.Array:
    return jaxloss.mse(jax.nn.sigmoid(logit), target)


def cross_entropy(logit: jax.Array, target: jax.Array) -> jax.Array:
    return jaxloss.bernoulli_nll(logit, target).sum()  # = sigmoid_binary_cross_entropy


def gaussian(mean: jax.Array, target: jax.Array) -> jax.Array:
    return jaxloss.gaussian_nll(mean, target).sum()  # σ = 1


def as_lists(params: list) -> list:
    return jax.tree.map(lambda leaf: np.asarray(leaf, np.float64).tolist(), params)


def affine(params: list, x: np.ndarray) -> np.ndarray:
    """wx + b of a `jaxloss.linear(1, 1)` params list, in NumPy."""
    return x * float(np.ravel(params[0]["w"])[0]) + float(np.ravel(params[0]["b"])[0])


def sigmoid(z: np.ndarray) -> np.ndarray:
    """σ(z) in NumPy, without overflow warnings for large |z|."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def saturation(args: argparse.Namespace, apply_fn) -> dict:
    """GD from the confidently wrong start under each loss, in `records` chunks of `jaxloss.fit`
    (SGD keeps no state, so chunks continue exactly), ‖∇L‖ measured before each chunk. (A
    `monitor_every` fit records ‖∇L‖² too, but compiles a sharpness power iteration as well:
    three times the cost here.)"""
    half = np.linspace(0.5, 1.5, args.points // 2)
    x = np.concatenate([half, -half])[:, None].astype(np.float32)
    y = (x > 0).astype(np.float32)
    start = [{"w": jnp.full((1, 1), INITIAL_WEIGHT, jnp.float32), "b": jnp.zeros((1,))}]
    x_fit, y_fit = _common.place(args, x, y, option="--points")
    start = _common.replicate(args, start)
    chunk = max(1, args.steps // args.records)
    losses = {
        "mse": jaxloss.objective(apply_fn, mse_on_sigmoid, reduction="mean"),
        "cross_entropy": jaxloss.objective(apply_fn, cross_entropy, reduction="mean"),
    }
    gradient_norms = jax.jit(
        lambda params: {
            name: optax.tree.norm(jax.grad(loss)(params[name], x_fit, y_fit))
            for name, loss in losses.items()
        }
    )
    params = {name: start for name in LOSSES}
    curves: dict = {name: [] for name in LOSSES}
    norms: dict = {name: [] for name in LOSSES}
    final: dict = {}
    for _ in _common.progress(range(args.records), args, "saturation"):
        for name, value in gradient_norms(params).items():
            norms[name].append(float(value))
        for name, loss in losses.items():
            result = jaxloss.fit(
                loss, params[name], x_fit, y_fit, learning_rate=args.learning_rate, steps=chunk
            )
            params[name], final[name] = result.params, result.final_loss
            curves[name].append(np.asarray(result.losses, np.float64))
    out: dict = {
        "inputs": x[:, 0].tolist(),
        "labels": y[:, 0].tolist(),
        "initial_params": as_lists(start),
        "learning_rate": args.learning_rate,
        "steps_run": chunk * args.records,
        "gradient_steps": list(range(0, chunk * args.records, chunk)),
        "initial_gradient_norm": {name: norms[name][0] for name in LOSSES},
        "final_loss": {},
        "steps_to_halve_loss": {},
        "loss": {},
        "gradient_norm": {},
    }
    for name in LOSSES:
        curve = np.concatenate(curves[name])
        below = np.flatnonzero(curve <= curve[0] / 2)
        out["final_loss"][name] = _common.finite_or_none(final[name])
        out["steps_to_halve_loss"][name] = int(below[0]) if below.size else None
        out["steps"], out["loss"][name] = _common.downsample(curve)
        out["gradient_norm"][name] = _common.finite_or_none(norms[name])
    grads = out["initial_gradient_norm"]
    out["gradient_ratio"] = grads["cross_entropy"] / grads["mse"]
    return out


def likelihood(args: argparse.Namespace, apply_fn) -> dict:
    """The matched and mismatched loss/target pairings, each fitted by full-batch GD."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.samples, 1)).astype(np.float32)
    continuous = (CONTINUOUS_LINE[0] * x + CONTINUOUS_LINE[1]).astype(np.float32)
    continuous += rng.normal(scale=0.5, size=x.shape).astype(np.float32)
    p_true = sigmoid(TRUE_LOGIT[0] * x.astype(np.float64) + TRUE_LOGIT[1])
    binary = (rng.uniform(size=x.shape) < p_true).astype(np.float32)
    start = [{"w": jnp.zeros((1, 1)), "b": jnp.zeros((1,))}]  # both losses are convex here
    start = _common.replicate(args, start)
    x_fit, continuous_fit, binary_fit = _common.place(
        args, x, continuous, binary, option="--samples"
    )
    gaussian_loss = jaxloss.objective(apply_fn, gaussian, reduction="mean")
    bernoulli_loss = jaxloss.objective(apply_fn, cross_entropy, reduction="mean")

    def fit(loss, targets):
        return jaxloss.fit(loss, start, x_fit, targets, learning_rate=1.0, steps=args.fit_steps)

    fitted = fit(gaussian_loss, continuous_fit)  # one compilation serves both Gaussian fits
    mean = apply_fn(fitted.params, x)
    mse = float(jaxloss.mse(mean, continuous))
    # Cross entropy reads the continuous y as a Bernoulli probability: NaN outside [0, 1].
    bce = np.asarray(jaxloss.sigmoid_binary_cross_entropy(mean, continuous), np.float64)
    xs = np.asarray(x[:, 0], np.float64)
    line = np.linspace(xs.min(), xs.max(), 101)
    cont = {
        "inputs": xs.tolist(),
        "targets": np.asarray(continuous[:, 0], np.float64).tolist(),
        "params": as_lists(fitted.params),
        "gaussian_nll": float(fitted.final_loss),
        "mse": mse,
        "nll_minus_half_mse": float(fitted.final_loss) - 0.5 * mse,
        "half_log_2pi": HALF_LOG_2PI,
        "fraction_outside_unit_interval": float(
            np.mean((np.asarray(continuous) < 0) | (np.asarray(continuous) > 1))
        ),
        "fraction_cross_entropy_nan": float(np.mean(np.isnan(bce))),
    }
    gauss, bern = fit(gaussian_loss, binary_fit), fit(bernoulli_loss, binary_fit)
    linear_p = affine(as_lists(gauss.params), xs)  # the Gaussian fit's "probability"
    logistic_p = sigmoid(affine(as_lists(bern.params), xs))
    truth = np.asarray(p_true[:, 0], np.float64)
    disc = {
        "labels": np.asarray(binary[:, 0], np.float64).tolist(),
        "line": line.tolist(),
        "true_probability": sigmoid(TRUE_LOGIT[0] * line + TRUE_LOGIT[1]).tolist(),
        "true_logit": list(TRUE_LOGIT),
        "gaussian": {
            "params": as_lists(gauss.params),
            "final_loss": float(gauss.final_loss),
            "line": affine(as_lists(gauss.params), line).tolist(),
            "fraction_outside_unit_interval": float(np.mean((linear_p < 0) | (linear_p > 1))),
            "min_prediction": float(linear_p.min()),
            "max_prediction": float(linear_p.max()),
            # Clipped to [0, 1] so it can be compared as a probability at all.
            "mean_abs_error_vs_true_probability": float(
                np.mean(np.abs(np.clip(linear_p, 0, 1) - truth))
            ),
        },
        "bernoulli": {
            "params": as_lists(bern.params),
            "final_loss": float(bern.final_loss),
            "line": sigmoid(affine(as_lists(bern.params), line)).tolist(),
            "fraction_outside_unit_interval": float(np.mean((logistic_p < 0) | (logistic_p > 1))),
            "min_prediction": float(logistic_p.min()),
            "max_prediction": float(logistic_p.max()),
            "mean_abs_error_vs_true_probability": float(np.mean(np.abs(logistic_p - truth))),
        },
    }
    return {"continuous": cont, "discrete": disc}


def run(args: argparse.Namespace) -> dict:
    _, apply_fn = jaxloss.linear(1, 1)
    print(
        f"saturation: logistic unit from w = {INITIAL_WEIGHT:g}, {args.points} points, "
        f"GD η = {args.learning_rate:g}, {args.steps} steps; likelihood: {args.samples} samples, "
        f"GD η = 1, {args.fit_steps} steps"
    )
    return {
        "args": _common.arguments(args),
        **saturation(args, apply_fn),
        "likelihood": likelihood(args, apply_fn),
    }


def table(result: dict) -> str:
    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    lines = [
        f"{'loss':<16} {'initial ‖∇L‖':>13} {'steps to halve loss':>20} {'final loss':>11}",
    ]
    for name in LOSSES:
        lines.append(
            f"{LABELS[name]:<16} {result['initial_gradient_norm'][name]:>13.3e} "
            f"{fmt(result['steps_to_halve_loss'][name], 'd'):>20} "
            f"{fmt(result['final_loss'][name], '.4g'):>11}"
        )
    lines.append(f"initial gradient ratio CE/MSE: {result['gradient_ratio']:.1f}")
    cont = result["likelihood"]["continuous"]
    lines.append(
        f"continuous target: Gaussian NLL − ½ MSE = {cont['nll_minus_half_mse']:.4f} "
        f"(½ log 2π = {cont['half_log_2pi']:.4f}); cross entropy NaN on "
        f"{cont['fraction_cross_entropy_nan']:.0%} of samples "
        f"({cont['fraction_outside_unit_interval']:.0%} of targets outside [0, 1])"
    )
    disc = result["likelihood"]["discrete"]
    lines.append(
        f"{'binary target, fit by':<24} {'predictions':>16} {'outside [0,1]':>14} "
        f"{'mean |p − p_true|':>18}"
    )
    for name, label in (("bernoulli", "Bernoulli NLL (CE)"), ("gaussian", "Gaussian NLL (MSE)")):
        row = disc[name]
        span = f"{row['min_prediction']:.2f} … {row['max_prediction']:.2f}"
        lines.append(
            f"{label:<24} {span:>16} {row['fraction_outside_unit_interval']:>14.1%} "
            f"{row['mean_abs_error_vs_true_probability']:>18.4f}"
        )
    return "\n".join(lines)


def plot(result: dict, path: Path) -> bool:
    """Loss and ‖∇L‖ over steps; the continuous and the binary fit; False without matplotlib."""
    plt = _common.pyplot()
    if plt is None:
        return False
    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    loss_ax, grad_ax, cont_ax, disc_ax = axes
    for name in LOSSES:
        loss_ax.plot(result["steps"], np.array(result["loss"][name], float), label=LABELS[name])
        grad_ax.plot(
            result["gradient_steps"], np.array(result["gradient_norm"][name], float),
            label=LABELS[name],
        )  # fmt: skip
    loss_ax.set(yscale="log", xlabel="step", ylabel="training loss (log)",
                title=f"from w = {INITIAL_WEIGHT:g} (every point wrong, |z| ≥ 4)")  # fmt: skip
    grad_ax.set(yscale="log", xlabel="step", ylabel="‖∇L‖ (log)",
                title=f"initial ‖∇L‖: CE = {result['gradient_ratio']:.0f} × MSE")  # fmt: skip
    loss_ax.legend()
    grad_ax.legend()

    cont = result["likelihood"]["continuous"]
    xs, ys = np.asarray(cont["inputs"]), np.asarray(cont["targets"])
    cont_ax.axhspan(0, 1, color="0.9", label="[0, 1]: where CE is defined")
    cont_ax.scatter(xs, ys, s=6, alpha=0.5, label="continuous target y")
    order = np.argsort(xs)
    w, b = np.ravel(cont["params"][0]["w"])[0], np.ravel(cont["params"][0]["b"])[0]
    cont_ax.plot(xs[order], w * xs[order] + b, "k", label="Gaussian-NLL fit (= least squares)")
    cont_ax.set(xlabel="x", ylabel="y",
                title=f"continuous y: NLL − ½MSE = ½log2π; CE NaN on "
                f"{cont['fraction_cross_entropy_nan']:.0%}")  # fmt: skip
    cont_ax.legend(fontsize=7)

    disc = result["likelihood"]["discrete"]
    labels = np.asarray(disc["labels"])
    jitter = np.random.default_rng(0).uniform(-0.03, 0.03, labels.shape)  # only to see overlaps
    disc_ax.scatter(xs, labels + jitter, s=6, alpha=0.4, label="binary label y")
    line = np.asarray(disc["line"])
    disc_ax.plot(line, disc["true_probability"], "k:", label="true P(y = 1 | x)")
    disc_ax.plot(line, disc["bernoulli"]["line"], label="Bernoulli-NLL fit σ(wx + b)")
    disc_ax.plot(line, disc["gaussian"]["line"], label="Gaussian-NLL fit wx + b")
    disc_ax.axhline(0, color="0.6", lw=0.8)
    disc_ax.axhline(1, color="0.6", lw=0.8)
    out = disc["gaussian"]["fraction_outside_unit_interval"]
    disc_ax.set(xlabel="x", ylabel="P(y = 1)",
                title=f"binary y: the Gaussian fit leaves [0, 1] on {out:.0%}")  # fmt: skip
    disc_ax.legend(fontsize=7)
    for ax in axes:
        ax.title.set_fontsize(10)
    fig.suptitle(
        "Under a sigmoid, cross entropy keeps a gradient where MSE's vanishes; MSE is the "
        "Gaussian likelihood (continuous y), cross entropy the Bernoulli one (binary y)"
    )
    return _common.save(fig, path, dpi=110)


def main(argv: list[str] | None = None) -> dict:
    return _common.main("mse_vs_cross_entropy", parse_args(argv), run, table, plot)


if __name__ == "__main__":
    main()
