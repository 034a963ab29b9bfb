"""The `--quick` run of experiments/lr_comparison.py: the sweep's outcome, the Taylor check at
seed 0's starting parameters and the LR range test, checked against NumPy and the public API."""

import jax
import numpy as np
import pytest
from experiment_runner import quick_run

import jaxloss

KEYS = {
    "learning_rates",
    "final_losses",
    "blew_up",
    "diverged_at",
    "best_learning_rate",
    "curves",
    "steps",
    "taylor_check",
    "lr_range_test",
    "initial_loss",
    "args",
    "seconds",
}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    return quick_run("lr_comparison", tmp_path_factory)


def test_outcome_of_each_run(quick):
    module, result, _ = quick
    q = module.QUICK
    assert KEYS <= result.keys()
    rates = np.asarray(result["learning_rates"])
    np.testing.assert_allclose(rates, np.geomspace(1e-3, 30, q["rates"]), rtol=1e-6)
    final = np.array(result["final_losses"], dtype=np.float64)  # None -> NaN
    curves = np.array(result["curves"], dtype=np.float64)
    assert final.shape == (q["rates"], q["seeds"])
    assert curves.shape == (q["rates"], q["seeds"], len(result["steps"]))
    assert result["steps"][0] == 0 and result["steps"][-1] == q["steps"] - 1
    # blew_up, by its definition: the final loss is not finite or above the run's initial loss.
    expected = ~np.isfinite(final) | (np.nan_to_num(final, nan=np.inf) > curves[:, :, 0])
    assert np.array_equal(np.array(result["blew_up"]), expected)
    # A diverged run blew up too (vacuous here: ReLU + cross entropy grows, never overflows,
    # so the non-finite case is checked on made-up losses below).
    diverged = np.array(result["diverged_at"]) >= 0
    assert np.all(np.array(result["blew_up"])[diverged])
    made_up = module.blew_up(np.array([[np.nan, np.inf, 2.0, 1.0, 0.5]]), np.ones((1, 5)))
    assert made_up.tolist() == [[True, True, True, False, False]]
    # The quick setting shows both outcomes: the smallest η trains, the largest blows up.
    assert not expected[0].any() and expected[-1].all()
    assert result["best_learning_rate"] in rates[~diverged.any(axis=1)]
    assert "blew up" in module.table(result)


def test_predictions_start_where_seed_0_started(quick):
    module, result, _ = quick
    q = module.QUICK
    # sweep's seed 0 starts from init_fn(split(key(0))[0]); the data key is that same key.
    key = jax.random.split(jax.random.key(0))[0]
    inputs, labels = jaxloss.spirals(q["samples"], classes=3, noise=0.1, key=key)
    init_fn, apply_fn = jaxloss.mlp([2, q["hidden"], q["hidden"], 3])
    f = jaxloss.objective(
        apply_fn, jaxloss.softmax_cross_entropy_with_integer_labels, reduction="mean"
    )
    # init_fn run eagerly, as sweep runs it (and reusing the script's op compilations).
    start = jax.jit(f)(init_fn(key), inputs, labels)
    taylor = result["taylor_check"]
    assert taylor["loss"] == pytest.approx(float(start), rel=1e-6)
    assert result["curves"][0][0][0] == pytest.approx(float(start), rel=1e-6)
    # Taylor: the loss rises from an η the quadratic model predicts within a factor 2.
    assert 0.5 < taylor["increase_from"] / taylor["predicted_increase_from"] < 2
    span = result["lr_range_test"]
    range_rates = np.asarray(span["learning_rates"])
    assert len(range_rates) == q["range_steps"]
    np.testing.assert_allclose(range_rates[[0, -1]], [1e-3, 30.0], rtol=1e-12)
    assert span["losses"][0] == pytest.approx(float(start), rel=1e-6)
    suggested = span["suggested_learning_rate"]
    assert suggested == span["suggested"] and 1e-3 <= suggested <= 30
