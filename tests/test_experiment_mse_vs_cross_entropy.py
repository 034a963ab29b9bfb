"""experiments/mse_vs_cross_entropy.py --quick: MSE's gradient vanishes under a saturated sigmoid
where cross entropy's does not (recomputed from the analytic derivatives in NumPy), and the
likelihood pairings' numbers."""

import math

import numpy as np
import pytest
from experiment_runner import quick_run


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    return quick_run("mse_vs_cross_entropy", tmp_path_factory)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_initial_gradients_from_the_analytic_formulas(quick):
    _, result, _ = quick
    x = np.asarray(result["inputs"], np.float64)
    y = np.asarray(result["labels"], np.float64)
    start = result["initial_params"][0]
    z = x * start["w"][0][0] + start["b"][0]
    s = sigmoid(z)
    # Per sample dℓ/dz; the objective is the mean over samples of ℓ(wx + b).
    dz = {"mse": 2 * (s - y) * s * (1 - s), "cross_entropy": s - y}
    for name, g in dz.items():
        norm = math.hypot(np.mean(g * x), np.mean(g))
        assert result["initial_gradient_norm"][name] == pytest.approx(norm, rel=1e-4)
    # The initial losses, the first point of each curve.
    assert result["loss"]["mse"][0] == pytest.approx(np.mean((s - y) ** 2), rel=1e-5)
    ce = np.mean(np.logaddexp(0, z) - y * z)
    assert result["loss"]["cross_entropy"][0] == pytest.approx(ce, rel=1e-5)


def test_cross_entropy_keeps_the_gradient(quick):
    _, result, _ = quick
    grads = result["initial_gradient_norm"]
    assert grads["cross_entropy"] >= 10 * grads["mse"]
    assert result["gradient_ratio"] == pytest.approx(grads["cross_entropy"] / grads["mse"])
    # Cross entropy halves its loss within the quick run; MSE does not, or later.
    halve = result["steps_to_halve_loss"]
    assert halve["cross_entropy"] is not None
    assert halve["mse"] is None or halve["mse"] > halve["cross_entropy"]


def test_continuous_target(quick):
    _, result, _ = quick
    cont = result["likelihood"]["continuous"]
    # Gaussian NLL with σ = 1: ½(y − μ)² + ½ log 2π per sample.
    assert cont["nll_minus_half_mse"] == pytest.approx(0.5 * math.log(2 * math.pi), abs=1e-4)
    x, y = np.asarray(cont["inputs"]), np.asarray(cont["targets"])
    slope, intercept = np.polyfit(x, y, 1)  # least squares = the Gaussian maximum likelihood
    params = cont["params"][0]
    assert params["w"][0][0] == pytest.approx(slope, abs=1e-3)
    assert params["b"][0] == pytest.approx(intercept, abs=1e-3)
    # Cross entropy is NaN exactly where the target is no probability.
    outside = np.mean((y < 0) | (y > 1))
    assert outside > 0
    assert cont["fraction_cross_entropy_nan"] == cont["fraction_outside_unit_interval"] == outside


def test_discrete_target(quick):
    _, result, _ = quick
    disc = result["likelihood"]["discrete"]
    x = np.asarray(result["likelihood"]["continuous"]["inputs"])
    gauss = disc["gaussian"]["params"][0]
    linear = x * gauss["w"][0][0] + gauss["b"][0]
    outside = np.mean((linear < 0) | (linear > 1))
    assert outside > 0
    assert disc["gaussian"]["fraction_outside_unit_interval"] == pytest.approx(outside)
    assert disc["bernoulli"]["fraction_outside_unit_interval"] == 0
    bern = disc["bernoulli"]
    assert (
        bern["mean_abs_error_vs_true_probability"]
        < (disc["gaussian"]["mean_abs_error_vs_true_probability"])
    )


def test_outputs(quick):
    module, result, out = quick
    quick = module.QUICK
    assert result["steps_run"] == quick["steps"]  # a multiple of records: no steps dropped
    assert result["steps"][0] == 0 and result["steps"][-1] == quick["steps"] - 1
    every = quick["steps"] // quick["records"]
    assert result["gradient_steps"] == list(range(0, quick["steps"], every))
    assert (out / "mse_vs_cross_entropy.png").stat().st_size > 0
    assert "‖∇L‖" in module.table(result)
