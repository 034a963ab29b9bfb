"""Which loss segments best, and what happens on images with nothing to segment? A small per-pixel
model trained on `jaxloss.segmentation_blobs` with cross entropy, dice, cross entropy + dice and
focal loss, scored by the held-out dice of its hard masks (threshold 0.5, per image).

About a quarter of the masks are empty (0 blobs). Dice is undefined there (0/0), so the empty-mask
test images are reported apart: the fraction predicted exactly empty and the false-positive pixels
per image. The per-image soft dice is trained with smoothing s = 1, so on an empty mask it costs
P/(P + 1) (P the predicted foreground mass): it still pushes false positives down (with s = 0 it
would be the constant 1, no gradient: empty images would be ignored). Cross entropy and focal loss
see every pixel of every image alike. Milletari et al. 2016 (V-Net) for dice; Lin et al. 2017 for
focal loss; cross entropy + dice as in nnU-Net (Isensee et al. 2021).

The model: a one-hidden-layer MLP applied to the (2r+1)² neighbourhood of every pixel, i.e. a
tiny two-layer convolutional net (a (2r+1)×(2r+1) convolution, tanh, a 1×1 convolution), built with
`jaxloss.mlp` on the image patches. Train and test images come from ONE draw, split in two. Each
loss trains with Adam on minibatches (`jaxloss.fit`), for a few initialisation seeds; every loss
starts from the same initialisations and sees the same minibatches.

    python experiments/segmentation_losses.py --help

Writes `<out>/segmentation_losses.json` and, when matplotlib is installed (`pip install -e
".[plot]"`), `<out>/segmentation_losses.png`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import _common  # experiments/_common.py: options, JSON + PNG output, lazy matplotlib
import jax
import numpy as np
import optax

import jaxloss

# Full batch in the quick run: the minibatch sampler costs about a second of compilation.
QUICK = {"train": 48, "test": 32, "size": 16, "hidden": 4, "steps": 60, "batch_size": 0, "seeds": 1}
LOSSES = ("cross_entropy", "dice", "cross_entropy+dice", "focal")
FOCAL_GAMMA = 2.0
DICE_SMOOTH = 1.0
# Test images drawn in the figure: this many with blobs, then this many empty ones.
EXAMPLES_NONEMPTY, EXAMPLES_EMPTY = 3, 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=256, help="training images (default 256)")
    parser.add_argument("--test", type=int, default=256, help="held-out images (default 256)")
    parser.add_argument("--size", type=int, default=32, help="image height = width (32)")
    parser.add_argument("--noise", type=float, default=0.8, help="pixel noise std (0.8)")
    parser.add_argument("--radius", type=int, default=2, help="neighbourhood radius r (2: 5×5)")
    parser.add_argument("--hidden", type=int, default=8, help="hidden units (8)")
    parser.add_argument("--steps", type=int, default=1500, help="Adam steps (default 1500)")
    parser.add_argument(
        "--batch-size", type=int, default=16, help="images per step, 0: all (default 16)"
    )
    parser.add_argument("--learning-rate", type=float, default=0.01, help="Adam η (0.01)")
    parser.add_argument("--seeds", type=int, default=3, help="initialisations per loss (3)")
    return _common.parse(parser, QUICK, argv, name="segmentation_losses")


def patches(images: np.ndarray, radius: int) -> np.ndarray:
    """`(N, H, W) -> (N, H, W, (2r+1)²)`: every pixel's neighbourhood, zero-padded (the
    background level) at the border."""
    size = 2 * radius + 1
    padded = np.pad(images, ((0, 0), (radius, radius), (radius, radius)))
    h, w = images.shape[1:]
    shifts = [padded[:, i : i + h, j : j + w] for i in range(size) for j in range(size)]
    return np.stack(shifts, axis=-1)


def sample_losses() -> dict:
    """name -> loss of ONE image: `(logits (H, W, 1), mask (H, W, 1)) -> scalar`."""

    def cross_entropy(logits, mask):
        return jaxloss.sigmoid_binary_cross_entropy(logits, mask).mean()

    def dice(logits, mask):
        return jaxloss.dice_loss(logits, mask, activation="sigmoid", smooth=DICE_SMOOTH)

    def focal(logits, mask):
        return jaxloss.sigmoid_focal_loss(logits, mask, gamma=FOCAL_GAMMA).mean()

    return {
        "cross_entropy": cross_entropy,
        "dice": dice,
        "cross_entropy+dice": lambda logits, mask: cross_entropy(logits, mask) + dice(logits, mask),
        "focal": focal,
    }


def switched_objective(apply_fn):
    """One objective for every loss: `params = {"net": ..., "loss": int32 index into LOSSES}`.
    The index is an integer leaf, so `jaxloss.fit` passes it through untrained and traced: one
    compilation serves all losses and seeds (each separate compilation costs seconds)."""
    branches = [sample_losses()[name] for name in LOSSES]

    def loss_fn(prediction, mask):
        index, logits = prediction
        return jax.lax.switch(index, branches, logits, mask)

    def model(params, x):  # the index travels with the logits to the loss
        return params["loss"], apply_fn(params["net"], x)

    return jaxloss.objective(model, loss_fn)


def hard_dice(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-image dice 2|A∩B|/(|A|+|B|) of boolean masks `(N, H, W)`; NaN where both are empty."""
    inter = np.sum(predicted & truth, axis=(1, 2))
    total = np.sum(predicted, axis=(1, 2)) + np.sum(truth, axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2 * inter / total, np.nan)


def scores(predicted: np.ndarray, truth: np.ndarray) -> dict:
    """The held-out numbers of boolean predictions `(N, H, W)`: the mean dice over the images with
    a non-empty mask; on the empty-mask images, the fraction predicted exactly empty and the
    mean false-positive pixels per image."""
    empty = ~truth.any(axis=(1, 2))
    fp = predicted[empty].sum(axis=(1, 2))
    return {
        "dice_score": float(np.mean(hard_dice(predicted[~empty], truth[~empty]))),
        "empty_predicted_empty": float(np.mean(fp == 0)) if empty.any() else None,
        "false_positive_pixels": float(np.mean(fp)) if empty.any() else None,
    }


def run(args: argparse.Namespace) -> dict:
    """`jaxloss.fit` per loss and seed, all through one compiled program."""
    n = args.train + args.test
    images, masks = jaxloss.segmentation_blobs(n, args.size, noise=args.noise, key=0)
    # NumPy from here: slicing jax arrays outside jit compiles one small program per operation.
    images, masks = np.asarray(images), np.asarray(masks)
    inputs = patches(images, args.radius)
    targets = masks[..., None]  # (N, H, W, 1): one foreground channel, class axis last
    train = slice(0, args.train)
    test_truth = masks[args.train :] > 0.5
    empty = ~test_truth.any(axis=(1, 2))
    features = (2 * args.radius + 1) ** 2
    init_fn, apply_fn = jaxloss.mlp([features, args.hidden, 1])
    init = jax.jit(init_fn)  # one compilation, not one per random op
    predict = jax.jit(jax.vmap(apply_fn, in_axes=(None, 0)))
    optimizer = optax.adam
    setting = (
        f"{args.train} train / {args.test} test images {args.size}×{args.size} (noise "
        f"{args.noise:g}; {int(empty.sum())} test masks empty), per-pixel MLP [{features}, "
        f"{args.hidden}, 1] on {2 * args.radius + 1}×{2 * args.radius + 1} neighbourhoods, Adam "
        f"η = {args.learning_rate:g}, {args.steps} steps of {args.batch_size or 'all'} images, "
        f"{args.seeds} seed(s)"
    )
    print(setting)
    # The baseline with no learning: threshold the noisy pixel itself at 0.5.
    baseline = scores(images[args.train :] > 0.5, test_truth)
    chosen = np.concatenate(
        [np.flatnonzero(~empty)[:EXAMPLES_NONEMPTY], np.flatnonzero(empty)[:EXAMPLES_EMPTY]]
    )
    out: dict = {
        "args": _common.arguments(args),
        "setting": setting,
        "losses": list(LOSSES),
        "test_images": int(args.test),
        "empty_masks": int(empty.sum()),
        "baseline_threshold_pixel": baseline,
        "examples": {
            "test_index": chosen.tolist(),
            "image": np.round(images[args.train :][chosen], 3).tolist(),
            "truth": test_truth[chosen].astype(int).tolist(),
            "prediction": {},
            "dice": {},
        },
    }
    objective = switched_objective(apply_fn)
    runs = [(k, seed) for k in range(len(LOSSES)) for seed in range(args.seeds)]
    fits = {}
    train_inputs, train_targets = _common.place(
        args, inputs[train], targets[train], option="--train"
    )
    start = time.perf_counter()
    for k, seed in _common.progress(runs, args, "loss × seed runs"):
        # Seed s: the same initialisation and minibatches for every loss.
        params = _common.replicate(args, {"net": init(seed), "loss": np.int32(k)})
        fits[k, seed] = jaxloss.fit(
            objective,
            params,
            train_inputs,
            train_targets,
            learning_rate=args.learning_rate,
            steps=args.steps,
            batch_size=args.batch_size or None,
            key=1000 + seed,  # minibatches: a stream apart from the initialisation
            optimizer=optimizer,
        )
    out["seconds"] = time.perf_counter() - start
    for k, name in enumerate(LOSSES):
        per_seed = []
        for seed in range(args.seeds):
            net = fits[k, seed].params["net"]
            predicted = np.asarray(predict(net, inputs[args.train :]))[..., 0] > 0
            per_seed.append(scores(predicted, test_truth))
            if seed == 0:  # the examples drawn: seed 0's masks
                examples = predicted[chosen]
        summary = {key: _mean(row[key] for row in per_seed) for key in per_seed[0]}
        losses = np.stack([np.asarray(fits[k, seed].losses) for seed in range(args.seeds)])
        steps, curves = _common.downsample(losses, 200)
        out[name] = {
            **summary,
            "dice_score_std": float(np.std([row["dice_score"] for row in per_seed])),
            "per_seed": per_seed,
            "final_train_loss": _common.finite_or_none(
                [fits[k, seed].final_loss for seed in range(args.seeds)]
            ),
            "curve_steps": steps,
            "curves": curves,
        }
        out["examples"]["prediction"][name] = examples.astype(int).tolist()
        out["examples"]["dice"][name] = _common.finite_or_none(
            hard_dice(examples, test_truth[chosen])
        )
    return out


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def table(result: dict) -> str:
    """loss, held-out dice (non-empty masks), empty-mask images predicted empty, FP pixels."""
    nonempty = result["test_images"] - result["empty_masks"]
    lines = [
        f"held-out: {nonempty} images with blobs, {result['empty_masks']} with an empty mask",
        f"{'loss':<20} {'dice (non-empty)':>17} {'± seeds':>8} {'empty → empty':>14} "
        f"{'FP px / empty img':>18}",
    ]
    rows = [("threshold pixel 0.5", {**result["baseline_threshold_pixel"], "dice_score_std": 0})]
    rows += [(name, result[name]) for name in result["losses"]]
    for name, row in rows:
        frac, fp = row["empty_predicted_empty"], row["false_positive_pixels"]
        lines.append(
            f"{name:<20} {row['dice_score']:17.4f} {row['dice_score_std']:8.4f} "
            f"{'-' if frac is None else f'{frac:.3f}':>14} {'-' if fp is None else f'{fp:.2f}':>18}"
        )
    lines.append(
        "dice: mean per-image hard dice (threshold 0.5) over the non-empty test masks, mean over "
        "seeds (± their std); empty → empty: fraction of the empty-mask images predicted with no "
        "foreground pixel; FP px: mean predicted foreground pixels on them"
    )
    return "\n".join(lines)


def plot(result: dict, path: Path) -> bool:
    """Top: held-out dice and empty-mask false positives per loss; below: example test images,
    their truth and each loss's predicted mask. False without matplotlib."""
    plt = _common.pyplot()
    if plt is None:
        return False
    names = result["losses"]
    ex = result["examples"]
    rows = len(ex["test_index"])
    fig = plt.figure(figsize=(12, 4 + 1.7 * rows))
    grid = fig.add_gridspec(2, 2, height_ratios=[4, 1.7 * rows])
    bars, fps = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
    x = np.arange(len(names))
    colors = [f"C{i}" for i in range(len(names))]
    dice = [result[n]["dice_score"] for n in names]
    bars.bar(x, dice, yerr=[result[n]["dice_score_std"] for n in names], color=colors, capsize=3)
    base = result["baseline_threshold_pixel"]
    bars.axhline(base["dice_score"], color="gray", ls="--", lw=1, label="threshold pixel at 0.5")
    low = min(dice + [base["dice_score"]])
    bars.set(
        xticks=x,
        xticklabels=names,
        ylim=(max(0.0, low - 0.1), 1.0),
        ylabel="held-out dice (non-empty masks)",
        title="dice score, mean ± std over seeds",
    )
    for i, value in enumerate(dice):
        bars.text(i, value, f"{value:.3f}", ha="center", va="bottom", fontsize=8)
    bars.legend(fontsize=8, loc="lower right")
    fp = [result[n]["false_positive_pixels"] or 0.0 for n in names]
    fps.bar(x, fp, color=colors)
    for i, n in enumerate(names):
        frac = result[n]["empty_predicted_empty"]
        if frac is not None:
            fps.text(i, fp[i], f"{frac:.0%} empty", ha="center", va="bottom", fontsize=8)
    fps.set(
        ylim=(0, 1.2 * max(fp + [1e-3])),  # room for the labels
        xticks=x,
        xticklabels=names,
        ylabel="false-positive pixels per image",
        title=f"on the {result['empty_masks']} empty-mask test images (label: predicted empty)",
    )
    for ax in (bars, fps):
        ax.tick_params(axis="x", labelsize=8)
    # The examples as ONE mosaic (one imshow, not one axes per panel: much faster to draw).
    size = len(ex["truth"][0])
    gap = max(1, size // 8)
    cell = size + gap
    # The image mapped from [-1, 2] (mask ± noise) to [0, 1]; masks are 0/1.
    columns = [np.clip((np.asarray(ex["image"]) + 1) / 3, 0, 1), np.asarray(ex["truth"], float)]
    columns += [np.asarray(ex["prediction"][n], float) for n in names]
    mosaic = np.full((rows * cell, len(columns) * cell), np.nan)  # NaN: the white gaps
    for c, column in enumerate(columns):
        for r in range(rows):
            mosaic[r * cell : r * cell + size, c * cell : c * cell + size] = column[r]
    ax = fig.add_subplot(grid[1, :])
    cmap = plt.get_cmap("gray").with_extremes(bad="white")
    ax.imshow(mosaic, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(np.arange(len(columns)) * cell + size / 2, ["image", "truth", *names])
    ax.xaxis.tick_top()
    ax.set_yticks(
        np.arange(rows) * cell + size / 2,
        [
            f"test #{i}" + ("\n(empty)" if not np.any(t) else "")
            for i, t in zip(ex["test_index"], ex["truth"])
        ],
    )
    ax.tick_params(length=0, labelsize=8)
    ax.set_frame_on(False)
    for c, n in enumerate(names, start=2):
        for r, d in enumerate(ex["dice"][n]):
            label = "dice —" if d is None else f"dice {d:.2f}"
            ax.text(c * cell + size / 2, r * cell + size, label, ha="center", va="top", fontsize=7)
    fig.suptitle(
        "Segmentation losses on noisy blobs: held-out dice of hard masks (threshold 0.5); "
        "empty masks scored apart",
        fontsize=10,
    )
    return _common.save(fig, path, dpi=120)


def main(argv: list[str] | None = None) -> dict:
    return _common.main("segmentation_losses", parse_args(argv), run, table, plot)


if __name__ == "__main__":
    main()
