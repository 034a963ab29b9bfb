"""The Taylor check in float64: predicted (first and second order) against actual loss change
`L(θ − ηg) − L(θ)` across η, with the true gradient and with a deliberately wrong one.

Gradient descent rests on `L(θ − ηg) − L(θ) = −η‖g‖² + ½η² gᵀHg + O(η³)`. With the true gradient
the first-order remainder `|actual − (−η‖g‖²)|` falls like η² (a log-log slope of 2) until float64
roundoff; with a wrong one, g̃ = 1.1·g (a hand-written `jax.custom_jvp` rule 10% off; the true
arm runs the same rule at 100%), the step is −ηg̃, the prediction −η‖g̃‖², and the remainder
`≈ η(‖g̃‖² − g̃ᵀg) = 0.11·η‖g‖²` falls only like η (slope 1). This is the Taylor remainder
convergence test of pyadjoint / dolfin-adjoint (Farrell et al., SIAM J. Sci. Comput.
35 (2013)); the regimes (first order within 10%, second order needed, loss rises) follow
`jaxloss.taylor_check`. Setting: softmax cross entropy (mean) of a tanh MLP on spiral points, at
a random θ.

    python experiments/taylor_check.py --help

Writes `<out>/taylor_check.json` and, when matplotlib is installed (`pip install -e ".[plot]"`),
`<out>/taylor_check.png`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _common  # experiments/_common.py: options, JSON + PNG output, lazy matplotlib
import jax
import numpy as np

import jaxloss

QUICK = {"samples": 64, "hidden": 16, "rates": 31}
# Per-η tables kept for each arm (the names of `jaxloss.TaylorReport` fields), plus `remainder`.
TABLES = ("learning_rates", "actual", "predicted_first", "predicted_second", "ratio", "regime")
SCALARS = (
    "remainder_slope",
    "loss",
    "grad_norm_sq",
    "curvature",
    "first_order_valid_up_to",
    "best_learning_rate",
    "predicted_best",
    "increase_from",
    "predicted_increase_from",
)
# Regime colours for the shading (the labels of `jaxloss.taylor_check`, in words).
REGIMES = {
    "roundoff": ("lightgray", "roundoff"),
    "first_order": ("tab:green", "first order (ratio within 10% of 1)"),
    "curvature": ("gold", "second order needed"),
    "increase": ("tab:red", "loss rises"),
    "non_finite": ("black", "non-finite"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=512, help="spiral points (default 512)")
    parser.add_argument("--hidden", type=int, default=32, help="hidden units (default 32)")
    parser.add_argument("--rates", type=int, default=97, help="learning rates, log-spaced (97)")
    parser.add_argument("--min-rate", type=float, default=1e-10, help="smallest η (1e-10)")
    parser.add_argument("--max-rate", type=float, default=1e2, help="largest η (1e2)")
    parser.add_argument(
        "--gradient-percent",
        type=int,
        default=110,
        help="the wrong gradient, in percent of the true one (default 110)",
    )
    return _common.parse(parser, QUICK, argv, name="taylor_check")


def derivative_percent(objective_fn):
    """`f({"model": θ, "percent": k}, inputs, targets)`: the value of `objective_fn(θ, inputs,
    targets)` with a derivative k/100 times the true one, as a hand-written `custom_jvp` rule with
    a bug would give (k = 100: the true derivative, exactly). k is an integer array: the Taylor
    check passes it through without differentiating it, so both arms share one compilation."""

    @jax.custom_jvp
    def f(params, inputs, targets):
        return objective_fn(params["model"], inputs, targets)

    @f.defjvp
    def f_jvp(primals, tangents):
        params, inputs, targets = primals

        def of_model(model):
            return objective_fn(model, inputs, targets)

        value, slope = jax.jvp(of_model, (params["model"],), (tangents[0]["model"],))
        return value, slope * (params["percent"] / 100)  # 100/100 is exactly 1

    return f


def arm(report: jaxloss.TaylorReport) -> dict:
    """The per-η tables and the scalars of one Taylor check, JSON-ready, with the first-order
    remainder |actual − predicted_first|."""
    saved = report.to_dict()  # strict JSON: NaN -> None
    out = {key: saved[key] for key in TABLES + SCALARS}
    out["remainder"] = _common.finite_or_none(np.abs(report.actual - report.predicted_first))
    return out


def problem(args: argparse.Namespace) -> tuple:
    """`(sizes, apply_fn, θ, inputs, labels)` in float64 NumPy: spiral points and a random θ of
    a tanh MLP with one hidden layer. The expansion holds at any θ: θ ~ N(0, 0.5²) from NumPy,
    shaped by `jax.eval_shape` of the model's init (which compiles nothing; its sampler would
    compile one program per layer shape, seconds in a test)."""
    inputs, labels = jaxloss.spirals(args.samples, classes=3, noise=0.1, key=0)
    sizes = [inputs.shape[-1], args.hidden, 3]
    init_fn, apply_fn = jaxloss.mlp(sizes)
    rng = np.random.default_rng(1)
    model = jax.tree.map(lambda s: rng.normal(0.0, 0.5, s.shape), jax.eval_shape(init_fn, 0))
    return sizes, apply_fn, model, np.asarray(inputs, np.float64), np.asarray(labels)


def run(args: argparse.Namespace) -> dict:
    """Two `jaxloss.taylor_check` calls in float64 on the same η grid and one compilation: the
    true derivative, and the derivative scaled to `--gradient-percent`."""
    sizes, apply_fn, model, inputs, labels = problem(args)
    loss = derivative_percent(
        jaxloss.objective(apply_fn, jaxloss.softmax_cross_entropy_with_integer_labels)
    )
    rates = np.geomspace(args.min_rate, args.max_rate, args.rates)
    setting = (
        f"float64; softmax cross entropy (mean) of a tanh MLP {sizes} at a random θ (seed 1), "
        f"{args.samples} spiral points (3 classes); {args.rates} η from {args.min_rate:g} to "
        f"{args.max_rate:g}; wrong gradient = {args.gradient_percent}% of the true one"
    )
    print(setting)
    arms = {"true_gradient": 100, "wrong_gradient": args.gradient_percent}
    # The context manager keeps x64 from leaking into whoever imported this module (a test).
    with jax.enable_x64(True):  # placed inside it too: float64 arrays stay float64 on the devices
        inputs, labels = _common.place(args, inputs, labels, option="--samples")
        reports = {
            name: jaxloss.taylor_check(
                loss,
                _common.replicate(args, {"model": model, "percent": np.asarray(percent)}),
                inputs,
                labels,
                learning_rates=rates,
            )
            for name, percent in _common.progress(arms.items(), args, "Taylor checks")
        }
    true, wrong = arm(reports["true_gradient"]), arm(reports["wrong_gradient"])
    return {
        "args": _common.arguments(args),
        "setting": setting,
        "gradient_scale": args.gradient_percent / 100,
        **true,
        "remainder_slope_wrong_gradient": wrong["remainder_slope"],
        "wrong_gradient": wrong,
    }


def _fmt(value, spec: str) -> str:
    """`value` formatted, None as "-" in the same width."""
    return format("-", ">" + spec.split(".")[0]) if value is None else format(value, spec)


def table(result: dict, rows: int = 13) -> str:
    """The scalars of both arms, then about `rows` η of the per-η tables."""
    wrong = result["wrong_gradient"]
    scale = result["gradient_scale"]
    lines = [
        f"{'':34} {'true gradient':>14} {f'{scale:g} × gradient':>15}",
        f"{'remainder slope (expect 2 / 1)':34} {_fmt(result['remainder_slope'], '14.3f')} "
        f"{_fmt(wrong['remainder_slope'], '15.3f')}",
    ]
    for key, text in [
        ("first_order_valid_up_to", "first order (10%) valid up to η"),
        ("best_learning_rate", "best η measured"),
        ("predicted_best", "best η predicted (2nd order)"),
        ("increase_from", "loss rises from η, measured"),
        ("predicted_increase_from", "loss rises from η, predicted"),
    ]:
        lines.append(f"{text:34} {_fmt(result[key], '14.3e')} {_fmt(wrong[key], '15.3e')}")
    lines += [
        "",
        f"{'η':>9} {'actual ΔL':>11} {'1st order':>11} {'2nd order':>11} {'ratio':>8} "
        f"{'|remainder|':>11} {'regime':<11} {'wrong: ratio':>12} {'|remainder|':>11}",
    ]
    count = len(result["learning_rates"])
    for i in np.unique(np.linspace(0, count - 1, min(rows, count)).round().astype(int)):
        lines.append(
            f"{result['learning_rates'][i]:9.2e} {_fmt(result['actual'][i], '11.3e')} "
            f"{_fmt(result['predicted_first'][i], '11.3e')} "
            f"{_fmt(result['predicted_second'][i], '11.3e')} "
            f"{_fmt(result['ratio'][i], '8.4f')} {_fmt(result['remainder'][i], '11.3e')} "
            f"{result['regime'][i]:<11} {_fmt(wrong['ratio'][i], '12.4f')} "
            f"{_fmt(wrong['remainder'][i], '11.3e')}"
        )
    lines.append(
        "ratio: actual / first-order prediction; |remainder|: |actual − first order|; regime of "
        "the true-gradient check"
    )
    return "\n".join(lines)


def _shade(ax, rates: np.ndarray, regimes: list[str]) -> None:
    """Colour the η axis by regime, each η owning the span to its neighbours' geometric
    midpoints; one span per run of equal regimes."""
    edges = np.concatenate([rates[:1], np.sqrt(rates[1:] * rates[:-1]), rates[-1:]])
    start = 0
    for i in range(1, len(regimes) + 1):
        if i == len(regimes) or regimes[i] != regimes[start]:
            ax.axvspan(edges[start], edges[i], color=REGIMES[regimes[start]][0], alpha=0.15, lw=0)
            start = i


def _array(values) -> np.ndarray:
    return np.array(values, dtype=np.float64)  # None -> NaN


def plot(result: dict, path: Path) -> bool:
    """|ΔL| actual and predicted, the ratio, and the remainder with slope references; False
    without matplotlib."""
    plt = _common.pyplot()
    if plt is None:
        return False
    from matplotlib.patches import Patch
    from matplotlib.ticker import LogFormatter, LogLocator

    rates = _array(result["learning_rates"])
    wrong = result["wrong_gradient"]
    scale = result["gradient_scale"]
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 4.8))
    for ax in (left, middle):
        _shade(ax, rates, result["regime"])

    actual = _array(result["actual"])
    falls = actual < 0
    left.plot(rates, np.abs(_array(result["predicted_first"])), "-", label="first order η‖g‖²")
    left.plot(
        rates, np.abs(_array(result["predicted_second"])), "--", label="second order (|value|)"
    )
    left.plot(rates[falls], -actual[falls], "k.", ms=4, label="actual: loss falls")
    left.plot(rates[~falls], np.abs(actual[~falls]), "rx", ms=4, label="actual: loss rises")
    left.set(
        xscale="log",
        yscale="log",
        xlabel="learning rate η (log)",
        ylabel="|ΔL| = |L(θ − ηg) − L(θ)| (log)",
        title="predicted vs actual loss change (true gradient)",
    )
    left.legend(fontsize=8, loc="upper left")

    ratios = np.concatenate([_array(result["ratio"]), _array(wrong["ratio"])])
    middle.plot(rates, ratios[: len(rates)], ".-", ms=3, label="true gradient")
    middle.plot(rates, ratios[len(rates) :], ".-", ms=3, label=f"{scale:g} × gradient")
    middle.axhline(1, color="gray", ls=":", lw=1)
    # With g̃ = s·g: actual −sη‖g‖² over predicted −η‖g̃‖² = −s²η‖g‖².
    middle.axhline(1 / scale, color="tab:orange", ls=":", lw=1, label=f"1/{scale:g}")
    middle.set(
        xscale="log",
        # Far past the rise the ratio runs off to large negative values: show down to -3.
        ylim=(max(-3.0, np.nanmin(ratios, initial=0.0) - 0.1), 1.3),
        xlabel="learning rate η (log)",
        ylabel="actual ΔL / first-order prediction",
        title="the ratio (shading: regimes of the true gradient)",
    )
    handles = middle.get_legend_handles_labels()[0]
    shown = dict.fromkeys(result["regime"])
    handles += [Patch(color=REGIMES[r][0], alpha=0.3, label=REGIMES[r][1]) for r in shown]
    middle.legend(handles=handles, fontsize=8, loc="lower left")

    for data, label, order in [
        (result, "true gradient", 2),
        (wrong, f"{scale:g} × gradient", 1),
    ]:
        remainder = _array(data["remainder"])
        slope = data["remainder_slope"]
        slope_text = "-" if slope is None else f"{slope:.2f}"
        (line,) = right.plot(rates, remainder, ".-", ms=3, label=f"{label}: slope {slope_text}")
        # Reference η^order a decade below the remainder at the largest first-order η.
        valid = np.flatnonzero(np.array(data["regime"]) == "first_order")
        if valid.size:
            anchor = valid[-1]
            span = rates[: anchor + 1]
            reference = 0.1 * remainder[anchor] * (span / rates[anchor]) ** order
            right.plot(span, reference, "--", color=line.get_color(), lw=1, label=f"slope {order}")
    roundoff = np.finfo(np.float64).eps * abs(result["loss"])
    right.axhline(roundoff, color="gray", lw=0.8, ls="--", label="float64 ε·L(θ)")
    right.set(
        xscale="log",
        yscale="log",
        ylim=(roundoff / 100, None),
        xlabel="learning rate η (log)",
        ylabel="|actual − first order| (log)",
        title="first-order remainder",
    )
    right.legend(fontsize=8, loc="upper left")
    # A label every few decades, as plain text ("1e-08"): mathtext labels are slow to lay out.
    for ax in (left, middle, right):
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                axis.set_major_locator(LogLocator(numticks=7))
                axis.set_major_formatter(LogFormatter(labelOnlyBase=True))
    fig.suptitle(
        "Taylor check in float64: the remainder falls like η² with the true gradient, like η "
        f"with a {scale:g}× wrong one"
    )
    return _common.save(fig, path, dpi=120)


def main(argv: list[str] | None = None) -> dict:
    return _common.main("taylor_check", parse_args(argv), run, table, plot)


if __name__ == "__main__":
    main()
