"""The `--quick` run of experiments/imbalanced_losses.py: scores recomputed from the saved
confusion matrices, the split checked against a fresh draw of the same data, and the claim that
focal loss and mining take the gradient off the easy anchors."""

import numpy as np
import pytest
from experiment_runner import quick_run

import jaxloss

METHODS = ("cross_entropy", "label_smoothing", "focal", "hard_negative_mining")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    return quick_run("imbalanced_losses", tmp_path_factory)


def test_scores_are_recall_and_precision_of_the_saved_confusions(quick):
    module, result, _ = quick
    seeds = module.QUICK["seeds"]
    assert result["methods"] == list(METHODS)
    for name in METHODS:
        r = result[name]
        confusion = np.asarray(r["confusion"], np.float64)  # (seeds, true, predicted)
        assert confusion.shape == (seeds, 3, 3)
        # Macro average over the object classes 1 and 2; an unpredicted class has precision 0.
        recall = np.mean([c[k, k] / max(c[k].sum(), 1) for c in confusion for k in (1, 2)])
        precision = np.mean([c[k, k] / max(c[:, k].sum(), 1) for c in confusion for k in (1, 2)])
        assert r["recall"] == pytest.approx(recall, rel=1e-12)
        assert r["precision"] == pytest.approx(precision, rel=1e-12)
        assert len(r["recall_per_seed"]) == len(r["precision_per_seed"]) == seeds
        for key in ("recall", "precision"):
            values = np.asarray(r[f"{key}_per_seed"])
            assert np.all((0 <= values) & (values <= 1))
            assert r[f"{key}_std"] == pytest.approx(np.std(values), abs=1e-12)
        assert np.isfinite(r["loss"]) and r["loss"] > 0
    assert "recall" in module.table(result)


def test_split_is_disjoint_and_from_one_draw(quick):
    module, result, _ = quick
    q = module.QUICK
    for seed, split in enumerate(result["splits"]):
        train, test = set(split["train"]), set(split["test"])
        assert not train & test
        assert train | test == set(range(2 * q["images"]))
        # The confusion rows count the test images' labels of the same single draw.
        args = result["args"]
        _, labels = jaxloss.imbalanced_anchors(
            2 * q["images"],
            q["anchors"],
            positive_rate=q["positive_rate"],
            classes=args["classes"],
            dim=args["dim"],
            separation=args["separation"],
            key=seed,
        )
        counts = np.bincount(np.asarray(labels)[split["test"]].ravel(), minlength=3)
        for name in METHODS:
            confusion = np.asarray(result[name]["confusion"][seed])
            np.testing.assert_array_equal(confusion.sum(axis=1), counts)


def test_focal_and_mining_take_the_gradient_off_easy_anchors(quick):
    module, result, _ = quick
    q = module.QUICK
    ce = result["cross_entropy"]["easy_gradient_share"]
    # (1 − p)^2 < 0.01 on an easy anchor; mining drops all but 3 negatives per positive.
    assert result["focal"]["easy_gradient_share"] < 0.2 * ce
    assert result["hard_negative_mining"]["easy_gradient_share"] < 0.5 * ce
    # Every training anchor of every seed lands in one difficulty bin at every checkpoint.
    for name in METHODS:
        counts = np.asarray(result[name]["anchor_count"])
        assert counts.shape == (q["checkpoints"] + 1, len(result["bin_edges"]) - 1)
        np.testing.assert_array_equal(counts.sum(axis=1), q["seeds"] * q["images"] * q["anchors"])
