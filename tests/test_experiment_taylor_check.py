"""The `--quick` run of experiments/taylor_check.py: remainder slopes 2 (true gradient) and 1
(gradient × 1.1), and one ΔL of each arm recomputed here in float64 with jax.grad."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from experiment_runner import quick_run

import jaxloss


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    return quick_run("taylor_check", tmp_path_factory)


def test_remainder_slopes(quick):
    module, result, _ = quick
    # pyadjoint's Taylor test: O(η²) with the true gradient, O(η) with a wrong one.
    assert result["remainder_slope"] == pytest.approx(2, abs=0.15)
    assert result["remainder_slope_wrong_gradient"] == pytest.approx(1, abs=0.15)
    assert result["wrong_gradient"]["remainder_slope"] == result["remainder_slope_wrong_gradient"]
    rates = np.asarray(result["learning_rates"])
    assert rates.shape == (module.QUICK["rates"],)
    assert result["wrong_gradient"]["learning_rates"] == result["learning_rates"]
    # Small η: first order holds with the true gradient; with g̃ = 1.1 g the actual change
    # −1.1η‖g‖² over the predicted −η‖g̃‖² = −1.21η‖g‖² is 1/1.1.
    assert result["regime"][0] == "first_order"
    assert result["ratio"][0] == pytest.approx(1, abs=1e-3)
    assert result["wrong_gradient"]["ratio"][0] == pytest.approx(1 / 1.1, abs=1e-3)
    # The largest η (100 × the predicted best) makes the loss rise.
    assert result["regime"][-1] == "increase"
    assert "remainder slope" in module.table(result)


@pytest.mark.x64
def test_one_loss_change_recomputed(quick):
    module, result, _ = quick
    quick_args = module.QUICK
    i = len(result["learning_rates"]) // 2
    eta = result["learning_rates"][i]
    scale = result["gradient_scale"]
    assert scale == 1.1
    # The script's data and model: float32 draws cast to float64.
    with jax.enable_x64(False):
        inputs, labels = jaxloss.spirals(quick_args["samples"], classes=3, noise=0.1, key=0)
        init_fn, apply_fn = jaxloss.mlp([2, quick_args["hidden"], 3])
        params = init_fn(jax.random.key(1))
    params = jax.tree.map(lambda leaf: np.asarray(leaf, np.float64), params)
    inputs = np.asarray(inputs, np.float64)
    f = jaxloss.objective(apply_fn, jaxloss.softmax_cross_entropy_with_integer_labels)

    @jax.jit
    def changes(params):
        loss, g = jax.value_and_grad(f)(params, inputs, labels)
        gg = sum(jnp.vdot(leaf, leaf) for leaf in jax.tree.leaves(g))

        def change(scale):  # L(θ − η·scale·g) − L(θ)
            moved = jax.tree.map(lambda p, d: p - eta * scale * d, params, g)
            return f(moved, inputs, labels) - loss

        return change(1.0), change(scale), gg

    true_change, wrong_change, gg = (float(v) for v in changes(params))
    assert result["actual"][i] == pytest.approx(true_change, rel=1e-8)
    assert result["predicted_first"][i] == pytest.approx(-eta * gg, rel=1e-12)
    wrong = result["wrong_gradient"]
    assert wrong["actual"][i] == pytest.approx(wrong_change, rel=1e-8)
    # The prediction made with the wrong gradient: −η‖1.1 g‖².
    assert wrong["predicted_first"][i] == pytest.approx(-eta * scale**2 * gg, rel=1e-12)
