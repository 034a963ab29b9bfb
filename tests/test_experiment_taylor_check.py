"""The `--quick` run of experiments/taylor_check.py: remainder slopes 2 (true gradient) and 1
(gradient × 1.1), and one ΔL and prediction of each arm recomputed here in float64 NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from experiment_runner import quick_run


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
    assert result["gradient_scale"] == 1.1
    assert result["regime"][0] == "first_order"
    assert result["ratio"][0] == pytest.approx(1, abs=1e-3)
    assert result["wrong_gradient"]["ratio"][0] == pytest.approx(1 / 1.1, abs=1e-3)
    # The largest η is past where the quadratic model predicts the rise: the loss rises.
    assert rates[-1] > result["predicted_increase_from"]
    assert result["regime"][-1] == "increase" and result["actual"][-1] > 0
    # run() kept float64 to itself: this test runs in the default float32.
    assert jnp.asarray(1.0).dtype == jnp.float32
    assert "remainder slope" in module.table(result)


def numpy_loss_and_gradient(params, x, y):
    """Mean softmax cross entropy of the tanh MLP [{"w", "b"}, {"w", "b"}] and its gradient,
    back propagation written out in float64 NumPy (an independent reference)."""
    (first, second), n = params, len(y)
    h = np.tanh(x @ first["w"] + first["b"])
    z = h @ second["w"] + second["b"]
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss = -log_p[np.arange(n), y].mean()
    dz = np.exp(log_p)
    dz[np.arange(n), y] -= 1
    dz /= n
    da = (dz @ second["w"].T) * (1 - h**2)
    grad = [{"w": x.T @ da, "b": da.sum(0)}, {"w": h.T @ dz, "b": dz.sum(0)}]
    return loss, grad


def test_one_loss_change_recomputed(quick):
    module, result, _ = quick
    i = len(result["learning_rates"]) // 2
    eta, scale = result["learning_rates"][i], result["gradient_scale"]
    # The script's data and θ (float64 NumPy), as run() draws them in the default float32 mode.
    _, _, params, x, y = module.problem(module.parse_args(["--quick"]))
    loss, g = numpy_loss_and_gradient(params, x, y)
    gg = sum(np.vdot(v, v) for v in jax.tree.leaves(g))

    def change(s):  # L(θ − η·s·g) − L(θ)
        moved = jax.tree.map(lambda p, d: p - eta * s * d, params, g)
        return numpy_loss_and_gradient(moved, x, y)[0] - loss

    # ΔL ≈ 1e-5 here, L ≈ 1: float64 roundoff of L leaves about 1e-10 relative.
    assert result["actual"][i] == pytest.approx(change(1.0), rel=1e-8)
    assert result["predicted_first"][i] == pytest.approx(-eta * gg, rel=1e-10)
    wrong = result["wrong_gradient"]
    assert wrong["actual"][i] == pytest.approx(change(scale), rel=1e-8)
    # The prediction made with the wrong gradient g̃ = 1.1 g: −η‖g̃‖² = −1.21 η‖g‖².
    assert wrong["predicted_first"][i] == pytest.approx(-eta * scale**2 * gg, rel=1e-10)
