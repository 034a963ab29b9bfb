"""experiments/segmentation_losses.py --quick: the four losses' held-out dice scores, the
empty-mask count and the stored example masks, checked against NumPy on a fresh draw."""

import numpy as np
import pytest
from experiment_runner import quick_run

import jaxloss

LOSSES = ["cross_entropy", "dice", "cross_entropy+dice", "focal"]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    return quick_run("segmentation_losses", tmp_path_factory)


@pytest.fixture(scope="module")
def test_split(quick):
    """The held-out images and masks, drawn again here with the script's key (0)."""
    module, result, _ = quick
    q = module.QUICK
    images, masks = jaxloss.segmentation_blobs(
        q["train"] + q["test"], q["size"], noise=result["args"]["noise"], key=0
    )
    return np.asarray(images)[q["train"] :], np.asarray(masks)[q["train"] :] > 0.5


def numpy_dice(a, b):
    """2|A∩B| / (|A| + |B|) of two boolean masks (not both empty)."""
    return 2 * np.sum(a & b) / (np.sum(a) + np.sum(b))


def test_scores_and_claim(quick):
    module, result, _ = quick
    assert result["losses"] == LOSSES
    base = result["baseline_threshold_pixel"]
    for name in LOSSES:
        row = result[name]
        assert 0 <= row["dice_score"] <= 1
        assert 0 <= row["empty_predicted_empty"] <= 1
        # Every loss learns: its masks beat thresholding the noisy pixel itself, by a margin,
        # and it marks far fewer false positives on the empty-mask images.
        assert row["dice_score"] > base["dice_score"] + 0.1
        assert row["false_positive_pixels"] < base["false_positive_pixels"] / 2
    assert "dice (non-empty)" in module.table(result)


def test_empty_masks_and_baseline_recomputed(quick, test_split):
    _, result, _ = quick
    images, truth = test_split
    empty = ~truth.any(axis=(1, 2))
    assert 0 < result["empty_masks"] == int(empty.sum()) < len(truth)
    assert result["test_images"] == len(truth)
    # The no-learning baseline, in NumPy: threshold the pixel at 0.5, dice per non-empty image.
    predicted = images > 0.5
    dice = np.mean([numpy_dice(p, t) for p, t in zip(predicted[~empty], truth[~empty])])
    assert result["baseline_threshold_pixel"]["dice_score"] == pytest.approx(dice, rel=1e-6)
    fp = predicted[empty].sum(axis=(1, 2))
    assert result["baseline_threshold_pixel"]["false_positive_pixels"] == pytest.approx(fp.mean())


def test_example_masks(quick, test_split):
    _, result, _ = quick
    _, truth = test_split
    ex = result["examples"]
    index = np.asarray(ex["test_index"])
    stored_truth = np.asarray(ex["truth"], bool)
    np.testing.assert_array_equal(stored_truth, truth[index])
    assert stored_truth[0].any() and not stored_truth[-1].any()  # blobs first, an empty one last
    for name in LOSSES:
        predicted = np.asarray(ex["prediction"][name], bool)
        for i in range(len(index)):
            if stored_truth[i].any():
                assert ex["dice"][name][i] == pytest.approx(
                    numpy_dice(predicted[i], stored_truth[i]), rel=1e-6
                )
            elif predicted[i].any():  # empty truth, false positives: no overlap at all
                assert ex["dice"][name][i] == 0
            else:  # both empty: 0/0, stored as None
                assert ex["dice"][name][i] is None
