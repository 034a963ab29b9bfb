"""experiments/xor.py --quick: a linear model (and an MLP with the identity activation) cannot fit
XOR, a tanh MLP can; its numbers recomputed in NumPy from the saved parameters."""

import math

import numpy as np
import pytest
from experiment_runner import quick_run

XOR_INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float64)
XOR_LABELS = np.array([0, 1, 1, 0])


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    return quick_run("xor", tmp_path_factory)


def numpy_logits(params, activation):
    """The MLP of jaxloss.models in NumPy: `activation` after every layer but the last."""
    x = XOR_INPUTS
    for layer in params[:-1]:
        x = activation(x @ np.asarray(layer["w"]) + np.asarray(layer["b"]))
    return (x @ np.asarray(params[-1]["w"]) + np.asarray(params[-1]["b"]))[:, 0]


def numpy_bce(logits, labels):
    """Mean sigmoid cross entropy: log(1 + e^z) − y z."""
    return np.mean(np.logaddexp(0.0, logits) - labels * logits)


def test_claim(quick):
    _, result, _ = quick
    assert result["models"] == ["linear", "mlp", "mlp_identity"]
    # No line separates {01, 10} from {00, 11}: at most 3 of 4 points right.
    assert result["linear"]["accuracy"] <= 0.75
    assert result["mlp_identity"]["accuracy"] <= 0.75
    assert result["mlp"]["accuracy"] == 1.0
    for name in result["models"]:
        row = result[name]
        assert row["seeds_fitted"] == sum(a == 1.0 for a in row["accuracies"])


def test_linear_models_stuck_at_ln2(quick):
    _, result, _ = quick
    # The mean cross entropy is convex in a linear model's (w, b); at w = 0, b = 0 every logit is
    # 0, its gradient Σ(σ − y)(x, 1) = Σ(½ − y)(x, 1) = 0 on XOR, so the optimum is ln 2 per sample.
    assert result["linear_optimum_loss"] == pytest.approx(math.log(2))
    for name in ("linear", "mlp_identity"):
        assert result[name]["final_loss"] == pytest.approx(math.log(2), rel=1e-3)
    # The tanh MLP goes far below what any linear model can reach.
    assert result["mlp"]["final_loss"] < 0.1 * math.log(2)


@pytest.mark.parametrize(
    "name, activation", [("linear", None), ("mlp", np.tanh), ("mlp_identity", lambda h: h)]
)
def test_recomputed_from_params(quick, name, activation):
    _, result, _ = quick
    row = result[name]
    logits = numpy_logits(row["params"], activation)
    # The linear models' logits are ~0: their signs (hence accuracies) are roundoff.
    if name == "mlp":
        assert np.mean((logits > 0) == XOR_LABELS) == row["accuracy"] == 1.0
    assert numpy_bce(logits, XOR_LABELS) == pytest.approx(row["final_loss"], rel=1e-4, abs=1e-6)


def test_outputs(quick):
    module, result, out = quick
    side = module.QUICK["grid"]
    for name in result["models"]:
        grid = np.array(result[name]["probability_grid"], dtype=np.float64)
        assert grid.shape == (side, side) and np.all((grid >= 0) & (grid <= 1))
    assert (out / "xor.png").stat().st_size > 0
    assert "accuracy" in module.table(result)
