"""Losses for rare positives: cross entropy, label smoothing, focal loss (γ = 2) and cross entropy
with SSD hard negative mining (3 negatives per positive), trained on the same detection-like
anchors where most anchors are easy background.

Claim (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017; Liu et al., "SSD", ECCV
2016): summed over many anchors, the small losses of easy negatives swamp the few positives. The
focal loss scales each anchor's gradient down by about (1 − p_true)^γ and mining drops all but
the hardest negatives, so both move the training signal off the easy anchors; label smoothing
changes neither which anchors count nor the imbalance. Setting: `jaxloss.imbalanced_anchors`
(1 % objects in 2 classes; train and test images split from ONE draw: the class centres depend
on the key), a per-anchor linear classifier, full-batch gradient descent; every objective is a
sum over anchors divided by the number of anchors, so the gradients are on one scale (SSD divides
by #positives instead: a constant factor, i.e. another learning rate). Recall and precision are
over the rare (object) classes, macro-averaged, on the held-out images, over a few seeds (data,
split and init), with their difference from cross entropy on the same seed.

What to expect: the gradient weights (bottom row) show the mechanism plainly. The effect on the
scores is small next to the seed-to-seed spread (each seed draws new class centres), so read the
paired differences: with a linear model trained to (near) convergence, focal loss buys a little
rare-class recall for some precision, mining stays within noise of cross entropy (by the end most
of its 3 negatives per positive are easy ones too), and label smoothing caps the logits so that
the background prior wins and rare-class recall collapses.

    python experiments/imbalanced_losses.py --help

Writes `<out>/imbalanced_losses.json` and, when matplotlib is installed (`pip install -e
".[plot]"`), `<out>/imbalanced_losses.png`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _common  # experiments/_common.py: options, JSON + PNG output, lazy matplotlib
import jax
import jax.numpy as jnp
import numpy as np

import jaxloss

METHODS = ("cross_entropy", "label_smoothing", "focal", "hard_negative_mining")
LABEL_SMOOTHING = 0.1
GAMMA = 2.0
NEG_POS_RATIO = 3.0
# Gradient weights are binned by 1 − p(true class) on a log axis, from very easy to hard.
BIN_EDGES = np.geomspace(1e-6, 1.0, 25)
EASY = 0.1  # an anchor is "easy" when 1 − p(true class) < EASY
QUICK = {
    "images": 16,
    "anchors": 64,
    "positive_rate": 0.05,
    "steps": 60,
    "checkpoints": 2,
    "seeds": 2,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=64, help="train images = test images (64)")
    parser.add_argument("--anchors", type=int, default=256, help="anchors per image (256)")
    parser.add_argument(
        "--positive-rate", type=float, default=0.01, help="chance an anchor is an object (0.01)"
    )
    parser.add_argument("--classes", type=int, default=3, help="classes, background 0 included (3)")
    parser.add_argument("--dim", type=int, default=8, help="feature dimension (8)")
    parser.add_argument(
        "--separation", type=float, default=1.0, help="scale of the class centres (1.0)"
    )
    parser.add_argument("--steps", type=int, default=1500, help="gradient steps (default 1500)")
    parser.add_argument("--learning-rate", type=float, default=0.5, help="η (default 0.5)")
    parser.add_argument(
        "--checkpoints",
        type=int,
        default=10,
        help="scores and gradient weights measured this often (10)",
    )
    parser.add_argument("--seeds", type=int, default=4, help="seeds: data, split, init (4)")
    return _common.parse(parser, QUICK, argv, name="imbalanced_losses")


# One image's loss per method: a sum over its anchors (logits (A, C), labels (A,)).
def _cross_entropy(logits, labels):
    return jnp.sum(jaxloss.softmax_cross_entropy_with_integer_labels(logits, labels))


def _label_smoothing(logits, labels):
    return jnp.sum(
        jaxloss.softmax_cross_entropy_with_integer_labels(
            logits, labels, label_smoothing=LABEL_SMOOTHING
        )
    )


def _focal(logits, labels):
    return jnp.sum(jaxloss.softmax_focal_loss_with_integer_labels(logits, labels, gamma=GAMMA))


def _hard_negative_mining(logits, labels):
    return jaxloss.mined_cross_entropy(logits, labels, neg_pos_ratio=NEG_POS_RATIO)[0]


IMAGE_LOSSES = (_cross_entropy, _label_smoothing, _focal, _hard_negative_mining)


def rare_class_scores(confusion: np.ndarray) -> tuple[float, float]:
    """(recall, precision) macro-averaged over the object classes 1..C−1 of a confusion matrix
    `confusion[true, predicted]`; a class never predicted has precision 0."""
    confusion = np.asarray(confusion, np.float64)
    hits = np.diag(confusion)[1:]
    recall = hits / np.maximum(confusion.sum(axis=1)[1:], 1)
    precision = hits / np.maximum(confusion.sum(axis=0)[1:], 1)
    return float(recall.mean()), float(precision.mean())


def _binned(difficulty: np.ndarray, norms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per bin of `difficulty` (1 − p_true, BIN_EDGES; below the first edge counts in the first
    bin): the sum of the gradient norms and the number of anchors."""
    index = np.clip(np.searchsorted(BIN_EDGES, difficulty, side="right") - 1, 0, len(BIN_EDGES) - 2)
    sums = np.bincount(index, weights=norms, minlength=len(BIN_EDGES) - 1)
    counts = np.bincount(index, minlength=len(BIN_EDGES) - 1)
    return sums, counts


def _ratio(sums: np.ndarray, counts: np.ndarray) -> list:
    with np.errstate(invalid="ignore", divide="ignore"):
        return _common.finite_or_none(sums / counts)


def run(args: argparse.Namespace) -> dict:
    """Per seed: one draw of 2·images images, split in half at random; per method, `fit` in
    `checkpoints` chunks (plain SGD has no state, so chunks continue exactly), measuring every
    anchor's gradient weight between them. One compilation per method (fit) and one for the
    measurements."""
    classes, anchors = args.classes, args.anchors
    init_fn, apply_fn = jaxloss.mlp([args.dim, classes])  # linear: per-anchor logits

    # ONE objective for the four losses (one compilation of `fit`): the parameters carry the
    # method as an int32 leaf, which `fit` passes through untrained, and `lax.switch` picks it.
    def model(params, x):
        return apply_fn(params["model"], x), params["method"]

    def image_loss(prediction, labels):
        logits, method = prediction
        return jax.lax.switch(method, IMAGE_LOSSES, logits, labels) / anchors

    objective = jaxloss.objective(model, image_loss, reduction="mean")
    chunk = max(1, args.steps // args.checkpoints)

    @jax.jit
    def measure(params, x, y):
        """1 − p_true, CE, the confusion matrix and each method's per-anchor ‖∂ℓ/∂logits‖."""
        logits = apply_fn(params, x)  # (N, A, C)
        ce = jaxloss.softmax_cross_entropy_with_integer_labels(logits, y)  # −log p_true
        confusion = jnp.zeros((classes, classes), jnp.int32)
        confusion = confusion.at[y.ravel(), jnp.argmax(logits, -1).ravel()].add(1)
        norms = [
            jnp.linalg.norm(jax.vmap(jax.grad(loss))(logits, y), axis=-1)
            for loss in IMAGE_LOSSES[:3]
        ]
        # Mining's gradient is cross entropy's on the mined anchors and 0 elsewhere (the mask
        # is a constant for autodiff): no second differentiation through the sort.
        mined = jax.vmap(
            lambda losses, positives: jaxloss.hard_negative_mask(
                losses, positives, neg_pos_ratio=NEG_POS_RATIO
            )
        )(ce, y != 0)
        norms.append(jnp.where(mined, norms[0], 0))
        # −expm1(−CE): 1 − p_true without cancellation for easy anchors.
        return -jnp.expm1(-ce), ce, confusion, jnp.stack(norms)

    print(
        f"data: {args.seeds} seeds x ({args.images} train + {args.images} test images) x "
        f"{anchors} anchors, positive rate {args.positive_rate}, {classes} classes, dim "
        f"{args.dim}, separation {args.separation}; linear model, SGD η {args.learning_rate}, "
        f"{chunk * args.checkpoints} steps"
    )
    bins = len(BIN_EDGES) - 1
    checkpoints = args.checkpoints + 1  # step 0 and after every chunk
    sums = np.zeros((len(METHODS), checkpoints, bins))
    counts = np.zeros((len(METHODS), checkpoints, bins))
    # (method, seed, checkpoint) held-out scores; (method, seed) the rest.
    scores = np.zeros((len(METHODS), args.seeds, checkpoints, 2))
    rare_ce, background_ce, easy_share = (np.zeros((len(METHODS), args.seeds)) for _ in range(3))
    confusions = np.zeros((len(METHODS), args.seeds, classes, classes), np.int64)
    curves, splits = {}, []
    pairs = [(s, m) for s in range(args.seeds) for m in range(len(METHODS))]
    for seed, m in _common.progress(pairs, args, "seed x loss"):
        if m == 0:  # a new seed: one draw of 2·images images, split by image at random
            x, y = jaxloss.imbalanced_anchors(
                2 * args.images,
                anchors,
                positive_rate=args.positive_rate,
                classes=classes,
                dim=args.dim,
                separation=args.separation,
                key=seed,
            )
            order = np.random.default_rng(seed).permutation(2 * args.images)
            train, test = np.sort(order[: args.images]), np.sort(order[args.images :])
            splits.append({"train": train.tolist(), "test": test.tolist()})
            x_train, y_train, x_test, y_test = x[train], y[train], x[test], y[test]
            x_train, y_train = _common.place(args, x_train, y_train, option="--images")
            rare = np.asarray(y_test) != 0
            start = init_fn(jax.random.key(seed))
        params, curve = start, []
        for c in range(checkpoints):
            difficulty, _, _, norms = map(np.asarray, measure(params, x_train, y_train))
            s, n = _binned(difficulty.ravel(), norms[m].ravel())
            sums[m, c] += s
            counts[m, c] += n
            _, ce, confusion, _ = map(np.asarray, measure(params, x_test, y_test))
            scores[m, seed, c] = rare_class_scores(confusion)
            if c < checkpoints - 1:
                fit = jaxloss.fit(
                    objective,
                    _common.replicate(args, {"model": params, "method": jnp.int32(m)}),
                    x_train,
                    y_train,
                    learning_rate=args.learning_rate,
                    steps=chunk,
                )
                params, curve = fit.params["model"], curve + np.asarray(fit.losses).tolist()
        easy = difficulty < EASY
        easy_share[m, seed] = norms[m][easy].sum() / max(norms[m].sum(), 1e-30)
        rare_ce[m, seed], background_ce[m, seed] = ce[rare].mean(), ce[~rare].mean()
        confusions[m, seed] = confusion
        if seed == 0:
            curves[m] = _common.downsample(np.asarray(curve))

    out = {
        "args": _common.arguments(args),
        "methods": list(METHODS),
        "hyperparameters": {
            "label_smoothing": LABEL_SMOOTHING,
            "gamma": GAMMA,
            "neg_pos_ratio": NEG_POS_RATIO,
        },
        "splits": splits,
        "bin_edges": BIN_EDGES.tolist(),
        "checkpoint_steps": [c * chunk for c in range(checkpoints)],
        "easy_threshold": EASY,
    }
    for m, name in enumerate(METHODS):
        summary = {}
        per_seed = {
            "recall": scores[m, :, -1, 0],
            "precision": scores[m, :, -1, 1],
            "loss": rare_ce[m],
            "background_loss": background_ce[m],
            "easy_gradient_share": easy_share[m],
            # Paired with cross entropy on the same data, split and init: the seed-to-seed
            # spread (the class centres differ) mostly cancels.
            "recall_minus_cross_entropy": scores[m, :, -1, 0] - scores[0, :, -1, 0],
            "precision_minus_cross_entropy": scores[m, :, -1, 1] - scores[0, :, -1, 1],
        }
        for key, values in per_seed.items():
            summary[key] = float(np.mean(values))
            summary[f"{key}_std"] = float(np.std(values))
            summary[f"{key}_per_seed"] = values.tolist()
        summary["recall_at_checkpoints"] = scores[m, :, :, 0].mean(axis=0).tolist()
        summary["precision_at_checkpoints"] = scores[m, :, :, 1].mean(axis=0).tolist()
        summary["confusion"] = confusions[m].tolist()
        summary["curve_steps"], summary["curve"] = curves[m]
        summary["mean_gradient_norm"] = [_ratio(s, n) for s, n in zip(sums[m], counts[m])]
        summary["anchor_count"] = counts[m].astype(int).tolist()
        out[name] = summary
    return out


def table(result: dict) -> str:
    """Per loss: rare-class recall and precision on the held-out images (mean ± std over seeds),
    their paired difference from cross entropy, held-out CE, the easy anchors' gradient share,
    and recall after the first chunk of training."""
    seeds, early = len(result["splits"]), result["checkpoint_steps"][1]
    lines = [
        f"held-out images, rare (object) classes macro-averaged, mean ± std over {seeds} seeds; "
        "Δ = minus cross entropy's on the same seed; rare CE = held-out cross entropy of the "
        f"object anchors; easy share = fraction of the final gradient norm from anchors with "
        f"1 − p_true < {result['easy_threshold']}",
        f"{'loss':<21} {'recall':>13} {'precision':>13} {'Δ recall':>14} {'Δ precision':>14} "
        f"{'rare CE':>13} {'easy share':>10} {f'recall@{early}':>11}",
    ]
    for name in result["methods"]:
        r = result[name]
        cells = [f"{r[k]:.3f} ± {r[k + '_std']:.3f}" for k in ("recall", "precision")]
        cells += [
            f"{r[k]:+.3f} ± {r[k + '_std']:.3f}"
            for k in ("recall_minus_cross_entropy", "precision_minus_cross_entropy")
        ]
        lines.append(
            f"{name:<21} {cells[0]:>13} {cells[1]:>13} {cells[2]:>14} {cells[3]:>14} "
            f"{r['loss']:>6.3f} ± {r['loss_std']:.3f} {r['easy_gradient_share']:>10.3f} "
            f"{r['recall_at_checkpoints'][1]:>11.3f}"
        )
    return "\n".join(lines)


def plot(result: dict, path: Path) -> bool:
    """Top: recall/precision per loss (bars ± std over seeds), along training, and the held-out
    CE of the rare classes. Bottom: mean ‖∂ℓ/∂logits‖ per anchor against 1 − p_true, early, in
    the middle and at the end of training."""
    plt = _common.pyplot()
    if plt is None:
        return False
    methods = result["methods"]
    steps = result["checkpoint_steps"]
    shown = sorted({1, len(steps) // 2, len(steps) - 1})
    fig, axes = plt.subplots(2, 3, figsize=(13.5, 8.5))
    colors = {m: f"C{i}" for i, m in enumerate(methods)}
    position = np.arange(len(methods))
    labels = [m.replace("_", "\n") for m in methods]
    ax = axes[0, 0]
    for offset, key, hatch in ((-0.2, "recall", None), (0.2, "precision", "//")):
        ax.bar(
            position + offset,
            [result[m][key] for m in methods],
            0.4,
            yerr=[result[m][key + "_std"] for m in methods],
            color=[colors[m] for m in methods],
            hatch=hatch,
            edgecolor="k",
            capsize=3,
            label=key,
        )
    ax.set(ylim=(0, 1.25), ylabel="held-out score (mean ± std over seeds)")
    ax.set_title("rare-class recall (plain), precision (hatched)")
    ax.set_xticks(position, labels, fontsize=8)
    ax.legend(loc="upper center", ncol=2, fontsize=8)
    ax = axes[0, 1]
    for m in methods:
        ax.plot(steps, result[m]["recall_at_checkpoints"], "o-", ms=3, color=colors[m], label=m)
        ax.plot(steps, result[m]["precision_at_checkpoints"], "--", color=colors[m])
    ax.set(ylim=(0, 1.05), xlabel="gradient step", ylabel="held-out score (mean over seeds)")
    ax.set_title("along training: recall (solid), precision (dashed)")
    ax.legend(fontsize=8)
    ax = axes[0, 2]
    ax.bar(
        position,
        [result[m]["loss"] for m in methods],
        0.6,
        yerr=[result[m]["loss_std"] for m in methods],
        color=[colors[m] for m in methods],
        capsize=3,
    )
    ax.set(ylabel="mean cross entropy (nats)")
    ax.set_title("held-out CE of the rare-class anchors")
    ax.set_xticks(position, labels, fontsize=8)
    edges = np.asarray(result["bin_edges"])
    centres = np.sqrt(edges[:-1] * edges[1:])
    for ax in axes[1, len(shown) :]:
        ax.axis("off")
    for ax, c in zip(axes[1], shown):
        for m in methods:
            norm = np.array(result[m]["mean_gradient_norm"][c], dtype=np.float64)  # None -> NaN
            norm[norm <= 0] = np.nan  # bins where mining kept no anchor: 0, off a log axis
            ax.plot(centres, norm, "o-", ms=3, color=colors[m], label=m)
        ax.set(
            xscale="log",
            yscale="log",
            ylim=(1e-9, 3),
            xlabel="1 − p(true class) (log): easy → hard",
            ylabel="mean ‖∂loss/∂logits‖ per anchor (log)",
        )
        ax.set_title(f"weight per training anchor after {steps[c]} steps")
    axes[1, 0].legend(fontsize=8, loc="lower right")
    fig.suptitle(
        "Focal loss and hard negative mining take the gradient off the easy anchors (bottom; "
        "mining gives 0 to unmined ones, not drawn);\nwhat that does to rare-class recall and "
        "precision on held-out images (top)"
    )
    return _common.save(fig, path, dpi=120)


def main(argv: list[str] | None = None) -> dict:
    return _common.main("imbalanced_losses", parse_args(argv), run, table, plot)


if __name__ == "__main__":
    main()
