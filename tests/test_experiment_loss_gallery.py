"""experiments/loss_gallery.py --quick: every curve against a closed form computed here in NumPy
(focal loss of Lin et al., BCE and MSE through a sigmoid, dice, Huber)."""

import numpy as np
import pytest
from experiment_runner import quick_run

FAMILIES = ("focal", "label_smoothing", "mse_vs_bce", "dice", "regression")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    return quick_run("loss_gallery", tmp_path_factory)


def curve(result, family, name, what="loss"):
    return np.array(result["families"][family]["curves"][name][what], dtype=np.float64)


def grid(result, family):
    return np.asarray(result["families"][family]["x"])


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_every_curve_has_a_value_at_every_x(quick):
    _, result, _ = quick
    assert tuple(result["families"]) == FAMILIES
    for name, family in result["families"].items():
        x = np.asarray(family["x"])
        assert len(x) >= quick[0].QUICK["points"] and np.all(np.diff(x) > 0), name
        assert set(family["probes"]) <= set(x.tolist()), name  # the table reads exact values
        for values in family["curves"].values():
            for what in ("loss", "gradient"):
                assert len(values[what]) == len(x) and None not in values[what], name


def test_focal_gamma_zero_is_cross_entropy(quick):
    _, result, _ = quick
    for what in ("loss", "gradient"):
        np.testing.assert_allclose(
            curve(result, "focal", "focal_gamma=0", what),
            curve(result, "focal", "cross_entropy", what),
            rtol=1e-6,
            atol=1e-7,
        )


def test_focal_matches_the_closed_form(quick):
    module, result, _ = quick
    p = grid(result, "focal")  # p_t of a positive example
    for gamma in module.GAMMAS:
        expected = -((1 - p) ** gamma) * np.log(p)
        # float32: p goes through logit and sigmoid, (1 - p)^γ amplifies its rounding by γ.
        np.testing.assert_allclose(
            curve(result, "focal", f"focal_gamma={gamma:g}"), expected, rtol=2e-4
        )
    # Cross entropy's gradient with respect to the logit: p_t − 1.
    np.testing.assert_allclose(
        curve(result, "focal", "cross_entropy", "gradient"), p - 1, atol=1e-6
    )
    # The claim: at p_t = 0.9, γ = 2 weighs the easy example (1 − 0.9)² = 100 times less.
    at = np.flatnonzero(np.isclose(p, 0.9))[0]
    ratio = (
        curve(result, "focal", "focal_gamma=2")[at] / curve(result, "focal", "cross_entropy")[at]
    )
    np.testing.assert_allclose(ratio, 0.01, rtol=1e-3)


def test_bce_and_mse_through_a_sigmoid(quick):
    _, result, _ = quick
    z, y = grid(result, "mse_vs_bce"), 1.0
    s = sigmoid(z)
    bce_gradient = curve(result, "mse_vs_bce", "binary_cross_entropy", "gradient")
    mse_gradient = curve(result, "mse_vs_bce", "mse", "gradient")
    np.testing.assert_allclose(bce_gradient, s - y, atol=1e-6)
    np.testing.assert_allclose(mse_gradient, 2 * (s - y) * s * (1 - s), atol=1e-6)
    np.testing.assert_allclose(curve(result, "mse_vs_bce", "mse"), (s - y) ** 2, atol=1e-6)
    # The claim: confidently wrong (z = −8), BCE still pulls with ~1, MSE's gradient vanished.
    at = np.flatnonzero(z == -8)[0]
    assert abs(bce_gradient[at]) > 0.99 and abs(mse_gradient[at]) < 1e-3


def test_label_smoothing_has_its_minimum_at_the_predicted_margin(quick):
    _, result, _ = quick
    family = result["families"]["label_smoothing"]
    m = grid(result, "label_smoothing")
    for name, best in family["optimal_margin"].items():
        loss = curve(result, "label_smoothing", name)
        if best is None:  # no smoothing: the loss falls all the way
            assert np.all(np.diff(loss) < 0)
        else:  # the grid minimum is next to log(p* (K − 1) / (1 − p*)), p* = 1 − ε + ε/K
            assert abs(m[np.argmin(loss)] - best) <= np.max(np.diff(m))


def test_dice_and_huber_closed_forms(quick):
    module, result, _ = quick
    q = grid(result, "dice")
    for size in module.OBJECTS:  # smooth 1: 1 − (2nq + 1) / (nq + n + 1)
        expected = 1 - (2 * size * q + 1) / (size * q + size + 1)
        np.testing.assert_allclose(curve(result, "dice", f"dice_{size}px"), expected, atol=1e-6)
    np.testing.assert_allclose(curve(result, "dice", "dice_smooth=0"), (1 - q) / (1 + q), atol=1e-6)
    r = grid(result, "regression")
    huber = np.where(np.abs(r) <= 1, r**2 / 2, np.abs(r) - 0.5)
    np.testing.assert_allclose(curve(result, "regression", "huber_delta=1"), huber, atol=1e-6)
    np.testing.assert_allclose(
        curve(result, "regression", "huber_delta=1", "gradient"), np.clip(r, -1, 1), atol=1e-6
    )


def test_table(quick):
    module, result, _ = quick
    text = module.table(result)
    assert "gradient" in text and "focal_gamma=5" in text
