"""A gallery of the jaxloss losses and their gradients against the quantity that matters to each:
the probability p_t of the true class, the margin, the logit, the overlap, the residual.

- Focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017, Fig. 1):
  `−(1 − p_t)^γ log p_t` for γ ∈ {0, 0.5, 1, 2, 5}; γ = 0 is cross entropy, larger γ
  down-weights the easy, well-classified examples (p_t → 1) by orders of magnitude.
- Label smoothing (Szegedy et al. 2016; Müller et al. 2019): the loss has its minimum at a finite
  margin (p_t = 1 − ε + ε/K), so it stops pushing the logits apart.
- MSE vs binary cross entropy through a sigmoid, against the logit of a positive example: MSE's
  gradient `2(σ − 1)σ(1 − σ)` vanishes when the sigmoid saturates on the wrong side, BCE's `σ − 1`
  stays near −1.
- Dice and Jaccard against the overlap of a predicted mask with the object, for a small and a
  large object: one minus an overlap ratio, so both cost the same (up to `smooth`).
- MSE, MAE and Huber against the residual: quadratic, linear, and quadratic-then-linear.

Every curve is computed with the jaxloss functions: `jax.vmap` of `jax.value_and_grad`, one
jitted program per family.

    python experiments/loss_gallery.py --help

Writes `<out>/loss_gallery.json` (every curve: the x values, the loss and the gradient per loss)
and, when matplotlib is installed (`pip install -e ".[plot]"`), `<out>/loss_gallery.png`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _common  # experiments/_common.py: options, JSON + PNG output, lazy matplotlib
import jax
import jax.numpy as jnp
import numpy as np

import jaxloss

QUICK = {"points": 41}
GAMMAS = (0.0, 0.5, 1.0, 2.0, 5.0)
SMOOTHING = (0.0, 0.1, 0.2)
CLASSES = 5  # classes of the label-smoothing example
PIXELS = 64  # positions of the 1-D segmentation mask
OBJECTS = (4, 32)  # object sizes in pixels: a small and a large one


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=401, help="points per curve (default 401)")
    return _common.parse(parser, QUICK, argv, name="loss_gallery", trains=False)


def _logit(p: jax.Array) -> jax.Array:
    return jnp.log(p) - jnp.log1p(-p)


# A family maps its x to (the loss argument, [(curve names, f(argument, h), one h per name)]):
# curves that differ only in a hyperparameter h share one traced loss, vmapped over h.
def _focal(p_t):  # the logit z of a positive example with σ(z) = p_t
    return _logit(p_t), [
        (["cross_entropy"], lambda z, _: jaxloss.sigmoid_binary_cross_entropy(z, 1.0), [0.0]),
        (
            [f"focal_gamma={g:g}" for g in GAMMAS],
            lambda z, g: jaxloss.sigmoid_focal_loss(z, 1.0, gamma=g),
            GAMMAS,
        ),
    ]


def _label_smoothing(margin):  # logits [m, 0, ..., 0], true class 0
    def loss(m, eps):
        logits = jnp.zeros(CLASSES).at[0].set(m)
        return jaxloss.softmax_cross_entropy_with_integer_labels(logits, 0, label_smoothing=eps)

    return margin, [([f"label_smoothing={e:g}" for e in SMOOTHING], loss, SMOOTHING)]


def _mse_vs_bce(z):  # a positive example (y = 1), p = σ(z)
    return z, [
        (["mse"], lambda z, _: jaxloss.mse(jax.nn.sigmoid(z)[None], jnp.ones(1)), [0.0]),
        (
            ["binary_cross_entropy"],
            lambda z, _: jaxloss.sigmoid_binary_cross_entropy(z, 1.0),
            [0.0],
        ),
    ]


def _overlap(q):  # probability q on the object's pixels, 0 elsewhere
    def loss(fn):
        def f(q, h):  # h = (object size in pixels, smooth)
            mask = (jnp.arange(PIXELS) < h[0]).astype(q.dtype)[:, None]  # (PIXELS, 1)
            return fn(q * mask, mask, from_logits=False, smooth=h[1])

        return f

    small, large = OBJECTS
    return q, [
        (
            [f"dice_{small}px", f"dice_{large}px", "dice_smooth=0"],
            loss(jaxloss.dice_loss),
            [(small, 1.0), (large, 1.0), (small, 0.0)],
        ),
        ([f"jaccard_{large}px"], loss(jaxloss.jaccard_loss), [(large, 1.0)]),
    ]


def _regression(r):  # prediction r, target 0
    return r, [
        (["mse"], lambda r, _: jaxloss.mse(r[None], jnp.zeros(1)), [0.0]),
        (["mae"], lambda r, _: jaxloss.mae(r[None], jnp.zeros(1)), [0.0]),
        (["huber_delta=1"], lambda r, _: jaxloss.huber_loss(r, 0.0, delta=1.0), [0.0]),
    ]


# family -> (x range, probes shown in the table, x label, what the gradient is taken against,
# a function x -> (the loss argument, {curve: loss of that argument}), the claim)
FAMILIES: dict[str, tuple] = {
    "focal": (
        (0.005, 0.995),
        (0.1, 0.5, 0.9),
        "p_t, probability of the true class",
        "∂L/∂z (logit)",
        _focal,
        "focal: easy examples (p_t → 1) down-weighted",
    ),
    "label_smoothing": (
        (-4.0, 12.0),
        (0.0, 3.0, 8.0),
        f"margin m (true logit − others, {CLASSES} classes)",
        "∂L/∂m",
        _label_smoothing,
        "label smoothing: minimum at a finite margin",
    ),
    "mse_vs_bce": (
        (-10.0, 10.0),
        (-8.0, 0.0, 4.0),
        "logit z of a positive example (y = 1)",
        "∂L/∂z",
        _mse_vs_bce,
        "through a sigmoid, MSE's gradient vanishes\nwhen confidently wrong; BCE's does not",
    ),
    "dice": (
        (0.0, 1.0),
        (0.0, 0.5, 1.0),
        "overlap q (probability on the object's pixels)",
        "∂L/∂q",
        _overlap,
        f"dice / Jaccard: one minus an overlap ratio\n(objects of {OBJECTS} of {PIXELS} pixels)",
    ),
    "regression": (
        (-3.0, 3.0),
        (0.5, 1.0, 3.0),
        "residual (prediction − target)",
        "∂L/∂prediction",
        _regression,
        "MSE quadratic, MAE linear, Huber both",
    ),
}


def curves(grids: dict[str, np.ndarray]) -> dict:
    """{family: (loss arguments, {curve: (losses, gradients)})} on each family's grid, all in
    one compiled program (one compilation instead of one per family)."""
    names: dict[str, list[str]] = {}  # curve names in their order (pytrees sort dict keys)

    def family_at(name, x):
        argument, entries = FAMILIES[name][4](x)
        names[name] = [curve for entry in entries for curve in entry[0]]
        values = []
        for _, f, hs in entries:
            # Each gradient is taken with respect to the loss argument (the logit z, not p_t).
            def value_and_grad(h, f=f):
                return jax.value_and_grad(f)(argument, h)

            values.append(jax.vmap(value_and_grad)(jnp.asarray(hs, jnp.float32)))
        return argument, values

    def all_families(grids):
        return {
            name: jax.vmap(lambda x, name=name: family_at(name, x))(grid)
            for name, grid in grids.items()
        }

    grids = {name: np.asarray(x, np.float32) for name, x in grids.items()}
    computed = jax.device_get(jax.jit(all_families)(grids))  # NumPy: no op-by-op slicing
    out = {}
    for name, (arguments, values) in computed.items():
        # Each entry gives (len(x), len(h)) losses and gradients: one column per curve.
        columns = [(v[:, i], g[:, i]) for v, g in values for i in range(v.shape[1])]
        out[name] = (np.asarray(arguments, np.float64), dict(zip(names[name], columns)))
    return out


def run(args: argparse.Namespace) -> dict:
    """Every family's curves in one jitted program, then the JSON."""
    # The probes lie on the grid, so the table reads exact values off the curves.
    grids = {
        name: np.union1d(np.linspace(*spec[0], args.points), spec[1])
        for name, spec in FAMILIES.items()
    }
    computed = curves(grids)
    families = {}
    for name, (_, probes, x_label, gradient_of, _, claim) in FAMILIES.items():
        x = grids[name]
        arguments, values = computed[name]
        families[name] = {
            "x": x.tolist(),
            "x_label": x_label,
            "gradient_of": gradient_of,
            "probes": list(probes),
            "claim": claim,
            "curves": {
                curve: {"loss": _common.finite_or_none(v), "gradient": _common.finite_or_none(g)}
                for curve, (v, g) in values.items()
            },
        }
        if name == "focal":
            families[name]["logits"] = arguments.tolist()
        if name == "label_smoothing":
            # p_t of each margin, and where the smoothed loss has its minimum (p_t = 1 − ε + ε/K).
            families[name]["p_true"] = (1 / (1 + (CLASSES - 1) * np.exp(-x))).tolist()
            best = {}
            for eps in SMOOTHING:
                p = 1 - eps + eps / CLASSES
                best[f"label_smoothing={eps:g}"] = (
                    float(np.log(p * (CLASSES - 1) / (1 - p))) if eps > 0 else None
                )
            families[name]["optimal_margin"] = best
    return {"args": _common.arguments(args), "families": families}


def _fmt(value: float | None) -> str:
    return f"{'-':>10}" if value is None else f"{value:10.3g}"


def table(result: dict) -> str:
    """Per family and loss: the loss and its gradient at a few probe points."""
    lines = []
    for name, family in result["families"].items():
        x = np.asarray(family["x"])
        at = [int(np.argmin(np.abs(x - p))) for p in family["probes"]]
        head = "".join(f"{f'x={p:g}':>10}" for p in family["probes"])
        lines.append(
            f"{name}: x = {family['x_label']}; gradient {family['gradient_of']}\n"
            f"  {'loss':<22}{head} | {'gradient':<8}{head}"
        )
        for curve, values in family["curves"].items():
            loss = "".join(_fmt(values["loss"][i]) for i in at)
            grad = "".join(_fmt(values["gradient"][i]) for i in at)
            lines.append(f"  {curve:<22}{loss} | {'':<8}{grad}")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> bool:
    """One column per family: the losses (top) and their gradients (bottom)."""
    plt = _common.pyplot()
    if plt is None:
        return False
    families = result["families"]
    fig, axes = plt.subplots(2, len(families), figsize=(4.4 * len(families), 7.5), squeeze=False)
    for column, (name, family) in enumerate(families.items()):
        top, bottom = axes[:, column]
        x = np.asarray(family["x"])
        for curve, values in family["curves"].items():
            loss = np.array(values["loss"], dtype=np.float64)  # None -> NaN
            gradient = np.array(values["gradient"], dtype=np.float64)
            style = ":" if curve == "focal_gamma=0" else "-"  # γ = 0 lies on cross entropy
            top.plot(x, loss, style, lw=1.5, label=curve)
            bottom.plot(x, gradient, style, lw=1.5, label=curve)
        if name == "label_smoothing":
            for margin in family["optimal_margin"].values():
                if margin is not None:
                    top.axvline(margin, color="gray", lw=0.6, ls="--")
        if name == "focal":
            top.set_ylim(0, 5)
        top.set(title=family["claim"], ylabel="loss")
        bottom.set(xlabel=family["x_label"], ylabel=f"gradient {family['gradient_of']}")
        bottom.axhline(0, color="gray", lw=0.5)
        top.legend(fontsize=7)
    fig.suptitle(
        "Each jaxloss loss (top) and its gradient (bottom) against the quantity it acts on",
        fontsize=13,
    )
    return _common.save(fig, path, dpi=120)


def main(argv: list[str] | None = None) -> dict:
    return _common.main("loss_gallery", parse_args(argv), run, table, plot)


if __name__ == "__main__":
    main()
