"""Smoke tests of the experiment scripts' `--quick` runs: the JSON they write and a real property
of each, checked against the public API computed here."""

import chex
import jax
import numpy as np
import pytest
from experiment_runner import quick_run

import jaxloss


@pytest.fixture(scope="module")
def optimizers(tmp_path_factory):
    return quick_run("optimizers", tmp_path_factory)


@pytest.fixture(scope="module")
def edge_of_stability(tmp_path_factory):
    return quick_run("edge_of_stability", tmp_path_factory)


def test_optimizers_quick(optimizers):
    module, result, out = optimizers
    quick = module.QUICK
    assert result["optimizers"] == ["sgd", "momentum", "adam"]
    rates = np.asarray(result["learning_rates"])
    chex.assert_trees_all_close(rates, np.geomspace(1e-4, 30, quick["rates"]), rtol=1e-6)
    # The initial loss: the MLP of the sweep's first seed (key split of key(0)) on the same data.
    inputs, labels = jaxloss.spirals(quick["samples"], classes=3, noise=0.1, key=jax.random.key(0))
    init_fn, apply_fn = jaxloss.mlp([2, quick["hidden"], quick["hidden"], 3])
    f = jaxloss.objective(apply_fn, jaxloss.softmax_cross_entropy_with_integer_labels)
    init_key = jax.random.split(jax.random.key(0))[0]
    initial = jax.jit(lambda key: f(init_fn(key), inputs, labels))(init_key)
    chex.assert_trees_all_close(result["initial_loss"], float(initial), rtol=1e-6)
    for name in result["optimizers"]:
        final = np.array(result["final_losses"][name], dtype=np.float64)
        assert final.shape == (quick["rates"], quick["seeds"])
        # Every optimizer trains at the smallest η: the loss falls, however little.
        assert np.all(final[0] < initial)
        # The best η: the lowest mean final loss among the rates with no diverged seed.
        best, best_loss = result["best_learning_rate"][name], result["best_final_loss"][name]
        stable = np.all(np.isfinite(final), axis=1)
        assert best_loss == pytest.approx(np.min(final[stable].mean(axis=1)), rel=1e-12)
        assert best in rates[stable]
        low, high = result["stable_range"][name]
        assert low == rates[0] and low <= best <= high
    assert (out / "optimizers.png").stat().st_size > 0
    assert "stable η" in module.table(result)


def test_edge_of_stability_quick(edge_of_stability):
    module, result, out = edge_of_stability
    quick = module.QUICK
    etas = result["learning_rates"]
    assert etas == [0.1, 0.2, 0.3]
    chex.assert_trees_all_close(result["two_over_eta"], [2 / eta for eta in etas])
    every, steps = quick["monitor_every"], quick["steps"]
    for i, eta in enumerate(etas):
        recorded = result["steps"][i]
        assert recorded == list(range(0, steps, every)) + [steps - 1]
        sharpness = np.array(result["sharpness"][i], dtype=np.float64)
        assert sharpness.shape == (len(recorded),) and len(result["losses"][i]) == steps
        assert np.all(np.isfinite(sharpness)) and np.all(sharpness > 0)
        assert result["max_sharpness_times_eta"][i] == pytest.approx(sharpness.max() * eta)
        assert result["diverged_at"][i] == -1
    # The Taylor ratio at step 0, by hand: (L(θ − ηg) − L(θ)) / (−η‖g‖²) at the initial params.
    inputs, labels = jaxloss.spirals(quick["samples"], classes=3, noise=0.1, key=0)
    init_fn, apply_fn = jaxloss.mlp([2, quick["hidden"], quick["hidden"], 3])
    f = jax.jit(jaxloss.objective(apply_fn, jaxloss.mse))
    params, targets = init_fn(jax.random.key(1)), jax.nn.one_hot(labels, 3)
    loss, g = jax.value_and_grad(f)(params, inputs, targets)
    gg = sum(float(np.vdot(leaf, leaf)) for leaf in jax.tree.leaves(g))
    for i, eta in enumerate(etas):
        moved = jax.tree.map(lambda p, d, eta=eta: p - eta * d, params, g)
        ratio = (f(moved, inputs, targets) - loss) / (-eta * gg)
        assert result["first_order_ratio"][i][0] == pytest.approx(float(ratio), rel=1e-3)
        # ... and the sharpness at step 0 is the same for every η (the same params).
        assert result["sharpness"][i][0] == pytest.approx(result["sharpness"][0][0], rel=1e-6)
    assert (out / "edge_of_stability.png").stat().st_size > 0
    assert "ratio before" in module.table(result)
