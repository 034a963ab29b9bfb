"""jaxloss.taylor_check / hessian_vector_product / top_hessian_eigenvalue.

References: a least-squares quadratic whose gradient, Hessian and Taylor expansion are exact in
NumPy; finite differences of the gradient; and the pyadjoint Taylor-test rule (remainder slope 2
for a correct gradient, 1 for a wrong one).
"""

import json
import pickle

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss

rng = np.random.default_rng(0)
# L(θ) = ½ Σ_i (x_i·θ − y_i)²: g = Xᵀ(Xθ − y), H = XᵀX, and L(θ − ηg) − L(θ) is exactly
# −η‖g‖² + ½η² gᵀHg.
X = rng.normal(size=(8, 3))
Y = rng.normal(size=8)
THETA = rng.normal(size=3)
H = X.T @ X
G = X.T @ (X @ THETA - Y)
LOSS = 0.5 * np.sum((X @ THETA - Y) ** 2)

quadratic = jaxloss.objective(
    lambda theta, x: x @ theta, lambda p, y: 0.5 * (p - y) ** 2, reduction="sum"
)
ce = optax.losses.softmax_cross_entropy_with_integer_labels


@jax.custom_vjp
def ce_wrong_gradient(logits, label):
    return ce(logits, label)


def _wrong_fwd(logits, label):
    return ce(logits, label), (logits, label)


def _wrong_bwd(residuals, cotangent):
    logits, label = residuals
    # A deliberately wrong gradient: 1.1 times the true one.
    return 1.1 * cotangent * jax.grad(ce)(logits, label), None


ce_wrong_gradient.defvjp(_wrong_fwd, _wrong_bwd)


@pytest.fixture(scope="module")
def mlp_numpy():
    """The MLP problem as NumPy float64 arrays; tests make JAX arrays in their own x64 mode."""
    init_fn, apply_fn = jaxloss.mlp([2, 8, 3])
    data = np.random.default_rng(1)
    x = data.normal(size=(32, 2))
    y = ((x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0)).astype(np.int32)
    params = jax.tree.map(lambda a: np.asarray(a, np.float64), jax.jit(init_fn)(jax.random.key(0)))
    return apply_fn, params, x, y


@pytest.fixture
def mlp_problem(mlp_numpy, x64):
    """float64 JAX arrays (x64 on for the test)."""
    apply_fn, params, x, y = mlp_numpy
    return apply_fn, jax.tree.map(jnp.asarray, params), jnp.asarray(x), jnp.asarray(y)


def to32(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), tree)


def counting(fn):
    """`fn` and a dict whose "n" counts its calls (= traces, under jit)."""
    count = {"n": 0}

    def counted(*args):
        count["n"] += 1
        return fn(*args)

    return counted, count


def quadratic_args(dtype=np.float64):
    return quadratic, *(jnp.asarray(a.astype(dtype)) for a in (THETA, X, Y))


# ------------------------------------------------------------------------------- quadratic


@pytest.mark.x64
def test_quadratic_second_order_is_exact_and_compiles_once():
    counted, count = counting(quadratic)

    report = jaxloss.taylor_check(counted, jnp.asarray(THETA), jnp.asarray(X), jnp.asarray(Y))
    traces = count["n"]
    etas = report.learning_rates
    chex.assert_shape([etas, report.actual, report.ratio], (64,))
    assert len(report.regime) == 64
    gg, ghg = G @ G, G @ H @ G
    eta_star = gg / ghg
    chex.assert_trees_all_close(
        [report.loss, report.grad_norm_sq, report.curvature], [LOSS, gg, ghg / gg], rtol=1e-12
    )
    chex.assert_trees_all_close(report.predicted_best, eta_star, rtol=1e-12)
    chex.assert_trees_all_close(report.predicted_increase_from, 2 * eta_star, rtol=1e-12)
    # The default grid: 64 values from 1e-8 to 1e2 times ‖g‖²/gᵀHg.
    chex.assert_trees_all_close(etas, eta_star * np.logspace(-8, 2, 64), rtol=1e-12)
    chex.assert_trees_all_close(report.predicted_first, -etas * gg, rtol=1e-12)
    # On a quadratic the second-order prediction IS the actual change, up to roundoff.
    new_losses = np.array([0.5 * np.sum((X @ (THETA - e * G) - Y) ** 2) for e in etas])
    roundoff = 64 * np.finfo(np.float64).eps * (LOSS + new_losses)
    np.testing.assert_array_less(np.abs(report.actual - report.predicted_second), roundoff)
    # The rise starts at 2‖g‖²/gᵀHg: below it the loss falls, above it rises.
    regime = np.array(report.regime)
    below, above = etas < 2 * eta_star * (1 - 1e-9), etas > 2 * eta_star * (1 + 1e-9)
    assert not np.any(regime[below] == "increase") and np.all(regime[above] == "increase")
    assert report.increase_from == etas[above].min()
    # First order holds while ½η gᵀHg/‖g‖² ≤ rtol, i.e. up to η = 2·rtol·η*.
    assert report.first_order_valid_up_to == etas[etas <= 0.2 * eta_star].max()
    assert set(regime[etas <= 0.2 * eta_star]) == {"first_order"}
    chex.assert_trees_all_close(report.remainder_slope, 2.0, atol=1e-3)

    # Around the predicted rise, with explicit learning rates (jitted, one more compilation).
    factors = np.array([0.9, 0.99, 1.01, 1.1, 0.5])
    near = jaxloss.taylor_check(
        counted,
        jnp.asarray(THETA),
        jnp.asarray(X),
        jnp.asarray(Y),
        learning_rates=2 * eta_star * factors,
    )
    np.testing.assert_allclose(near.learning_rates, np.sort(2 * eta_star * factors), rtol=1e-15)
    assert near.regime == ("curvature", "curvature", "curvature", "increase", "increase")
    assert near.best_learning_rate == near.learning_rates[0]  # η* = 0.5·(2η*) is the best
    traces_two_grids = count["n"]
    assert traces_two_grids == 2 * traces

    # New values of the same shapes (params, data, learning rates) never recompile.
    other = jnp.asarray(rng.normal(size=3))
    jaxloss.taylor_check(counted, other, jnp.asarray(X + 1), jnp.asarray(Y))
    jaxloss.taylor_check(
        counted,
        other,
        jnp.asarray(X),
        jnp.asarray(Y),
        learning_rates=np.array([1e-3, 1e-2, 1e-1, 1.0, 2.0]),
    )
    assert count["n"] == traces_two_grids


@pytest.mark.x64
def test_zero_gradient_is_all_roundoff_and_serialises():
    report = jaxloss.taylor_check(quadratic, jnp.zeros(3), jnp.eye(3), jnp.zeros(3))
    assert set(report.regime) == {"roundoff"}
    assert np.all(np.isnan(report.ratio))
    assert np.isnan(report.curvature) and np.isnan(report.predicted_best)
    assert np.isnan(report.remainder_slope) and np.isnan(report.first_order_valid_up_to)
    text = json.dumps(report.to_dict(), allow_nan=False)
    assert json.loads(text)["curvature"] is None
    assert "too few first-order points" in report.summary()


# ------------------------------------------------------------------------ MLP, cross entropy


def test_mlp_cross_entropy_float32_and_float64(mlp_problem):
    # (x64 on for the float64 half; the float32 half runs on float32 arrays.)
    apply_fn, params64, x, y = mlp_problem
    f = jaxloss.objective(apply_fn, ce)
    r32 = jaxloss.taylor_check(f, to32(params64), to32(x), y)
    assert r32.dtype == "float32"
    assert abs(r32.remainder_slope - 2) <= 0.2
    regime32 = np.array(r32.regime)
    for label in ("roundoff", "first_order", "curvature", "increase"):
        assert label in regime32
    # float32 roundoff hides the first-order change at the smallest η ...
    assert regime32[0] == "roundoff"
    # ... float64 on the same η shows it, with the same slope.
    r64 = jaxloss.taylor_check(f, params64, x, y, learning_rates=r32.learning_rates)
    assert r64.dtype == "float64"
    regime64 = np.array(r64.regime)
    small = regime32 == "roundoff"
    assert np.all(regime64[small] == "first_order")
    chex.assert_trees_all_close(r64.ratio[small], 1.0, atol=1e-6)
    assert abs(r64.remainder_slope - 2) <= 0.05
    # float32 and float64 agree where both are well above roundoff.
    chex.assert_trees_all_close(r32.loss, r64.loss, rtol=1e-6)
    chex.assert_trees_all_close(r32.curvature, r64.curvature, rtol=1e-3)

    # The report: a readable table and strict JSON.
    text = r32.summary()
    assert "remainder slope" in text and "the gradient matches the loss" in text
    assert len(text.splitlines()) == 10 + 64
    assert str(r32) == text
    data = json.loads(json.dumps(r32.to_dict(), allow_nan=False))
    assert data["regime"] == list(r32.regime) and len(data["actual"]) == 64
    assert data["remainder_slope"] == r32.remainder_slope


def test_wrong_gradient_is_caught(mlp_problem):
    apply_fn, params64, x, y = mlp_problem
    f = jaxloss.objective(apply_fn, ce_wrong_gradient)
    report = jaxloss.taylor_check(f, params64, x, y)
    # The remainder falls like η, not η²: the gradient does not belong to the loss.
    assert abs(report.remainder_slope - 1) <= 0.1
    # At small η actual/predicted = gᵀ(1.1 g)/‖1.1 g‖² = 1/1.1, not 1.
    chex.assert_trees_all_close(report.ratio[:10], 1 / 1.1, rtol=1e-4)
    assert "does NOT match" in report.summary()


# -------------------------------------------------------------- Hessian-vector products


@pytest.mark.x64
def test_hessian_vector_product():
    v = rng.normal(size=3)
    hv = jaxloss.hessian_vector_product(
        quadratic, jnp.asarray(THETA), jnp.asarray(X), jnp.asarray(Y), jnp.asarray(v)
    )
    chex.assert_trees_all_close(hv, H @ v, rtol=1e-12)


def test_hessian_vector_product_mlp_against_finite_differences(mlp_problem):
    apply_fn, params64, x, y = mlp_problem
    f = jaxloss.objective(apply_fn, ce)
    v = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape)), params64)
    hvp = jax.jit(jaxloss.hessian_vector_product, static_argnums=0)
    hv = hvp(f, params64, x, y, v)
    grad = jax.jit(jax.grad(f))
    eps = 1e-5
    shifted = [jax.tree.map(lambda p, d, s=s: p + s * eps * d, params64, v) for s in (1, -1)]
    fd = jax.tree.map(lambda a, b: (a - b) / (2 * eps), *(grad(p, x, y) for p in shifted))
    chex.assert_trees_all_close(hv, fd, rtol=1e-6, atol=1e-8)
    chex.assert_trees_all_equal_shapes_and_dtypes(hv, params64)


@pytest.mark.x64
def test_top_hessian_eigenvalue():
    lam = jaxloss.top_hessian_eigenvalue(
        quadratic,
        jnp.asarray(THETA),
        jnp.asarray(X),
        jnp.asarray(Y),
        iters=200,
        key=jax.random.key(0),
    )
    chex.assert_trees_all_close(lam, np.linalg.eigvalsh(H).max(), rtol=1e-8)
    # A zero Hessian gives 0, not NaN.
    flat = jaxloss.objective(lambda theta, x: x @ theta, lambda p, y: p - y)
    zero = jaxloss.top_hessian_eigenvalue(
        flat, jnp.ones(3), jnp.eye(3), jnp.zeros(3), key=jax.random.key(1)
    )
    assert float(zero) == 0.0


# ---------------------------------------------------------------------------- static errors


def test_float32_against_float64_numpy():
    """The default float32 mode: every reported number, the HVP and λ_max against NumPy float64
    at float32 tolerance, and the regimes where the float32 roundoff does not hide them."""
    f, theta, x, y = quadratic_args(np.float32)
    gg, ghg = G @ G, G @ H @ G
    eta_star = gg / ghg
    report = jaxloss.taylor_check(f, theta, x, y)
    assert report.dtype == "float32"
    chex.assert_trees_all_close(
        [report.loss, report.grad_norm_sq, report.curvature, report.predicted_best],
        [LOSS, gg, ghg / gg, eta_star],
        rtol=1e-5,
    )
    etas = report.learning_rates
    chex.assert_trees_all_close(etas, eta_star * np.logspace(-8, 2, 64), rtol=1e-5)
    exact = np.array([0.5 * np.sum((X @ (THETA - e * G) - Y) ** 2) for e in etas]) - LOSS
    # actual = L(θ − ηg) − L(θ) in float32: within a few ulps of the losses involved.
    ulps = 16 * np.finfo(np.float32).eps * (LOSS + np.abs(exact + LOSS))
    np.testing.assert_array_less(np.abs(report.actual - exact), ulps)
    regime = np.array(report.regime)
    assert regime[0] == "roundoff" and regime[-1] == "increase" and "first_order" in regime
    chex.assert_trees_all_close(report.remainder_slope, 2.0, atol=0.2)
    v = np.array([0.5, -1.0, 2.0])
    hv = jaxloss.hessian_vector_product(f, theta, x, y, jnp.asarray(v, jnp.float32))
    assert hv.dtype == jnp.float32
    chex.assert_trees_all_close(hv, H @ v, rtol=1e-5)
    lam = jaxloss.top_hessian_eigenvalue(f, theta, x, y, iters=100, key=0)
    assert lam.dtype == jnp.float32
    chex.assert_trees_all_close(lam, np.linalg.eigvalsh(H).max(), rtol=1e-5)
    # An int seed is the key jax.random.key(seed); a legacy uint32 key works too.
    for key in (jax.random.key(0), np.int64(0), jax.random.PRNGKey(0)):
        same = jaxloss.top_hessian_eigenvalue(f, theta, x, y, iters=np.int64(100), key=key)
        assert same == lam


def test_static_errors():
    args = quadratic_args(np.float32)
    with pytest.raises(ValueError, match=r"jaxloss.taylor_check: `rtol` must lie in \(0, 1\)"):
        jaxloss.taylor_check(*args, rtol=1.5)
    with pytest.raises(ValueError, match=r"`learning_rates` must lie in \(0, inf\]"):
        jaxloss.taylor_check(*args, learning_rates=[0.0, 0.1])
    with pytest.raises(ValueError, match=r"`learning_rates` must be a non-empty 1-D array"):
        jaxloss.taylor_check(*args, learning_rates=np.ones((2, 2)))
    no_float = r"`params` must be a pytree with at least one floating-point array leaf"
    with pytest.raises(TypeError, match=no_float):
        jaxloss.taylor_check(quadratic, jnp.arange(3), jnp.asarray(X), jnp.asarray(Y))
    with pytest.raises(ValueError, match=r"jaxloss.taylor_check: `inputs` and `targets` must"):
        jaxloss.taylor_check(quadratic, jnp.asarray(THETA), jnp.asarray(X), jnp.zeros(3))
    with pytest.raises(ValueError, match=r"top_hessian_eigenvalue: `iters` must lie in \[1, "):
        jaxloss.top_hessian_eigenvalue(*args, iters=0, key=jax.random.key(0))
    # One rule: a float or a bool is not an integer (a TypeError), NumPy ints are.
    for iters in (2.0, True):
        with pytest.raises(TypeError, match=r"top_hessian_eigenvalue: `iters` must be an integer"):
            jaxloss.top_hessian_eigenvalue(*args, iters=iters, key=jax.random.key(0))
    for key in (0.5, True, None):
        with pytest.raises(TypeError, match=r"top_hessian_eigenvalue: `key` must be a jax.random"):
            jaxloss.top_hessian_eigenvalue(*args, key=key)
    int_params = jnp.arange(3)
    data = (jnp.asarray(X, jnp.float32), jnp.asarray(Y, jnp.float32))
    with pytest.raises(TypeError, match=r"taylor_check: " + no_float):
        jaxloss.taylor_check(quadratic, int_params, *data)
    with pytest.raises(TypeError, match=r"top_hessian_eigenvalue: " + no_float):
        jaxloss.top_hessian_eigenvalue(quadratic, int_params, *data, key=0)
    with pytest.raises(TypeError, match=r"hessian_vector_product: " + no_float):
        jaxloss.hessian_vector_product(quadratic, int_params, X, Y, int_params)
    empty = (jnp.asarray(X)[:0], jnp.asarray(Y)[:0])
    with pytest.raises(ValueError, match=r"taylor_check: `inputs` must have at least one sample"):
        jaxloss.taylor_check(quadratic, jnp.asarray(THETA), *empty)
    with pytest.raises(ValueError, match=r"top_hessian_eigenvalue: `inputs` must have at least"):
        jaxloss.top_hessian_eigenvalue(quadratic, jnp.asarray(THETA), *empty, key=0)


def test_hessian_vector_product_vector_must_match_params():
    params = {"a": jnp.ones(3), "b": jnp.zeros(())}
    f = lambda p, x, y: jnp.sum((x @ p["a"] + p["b"] - y) ** 2)  # noqa: E731
    args = (f, params, jnp.asarray(X, jnp.float32), jnp.asarray(Y, jnp.float32))
    with pytest.raises(ValueError, match=r"hessian_vector_product: `vector` must have the pytree"):
        jaxloss.hessian_vector_product(*args, [jnp.ones(3), jnp.zeros(())])
    with pytest.raises(
        ValueError, match=r"`vector` leaf 0 must have the shape .*\(3,\); got \(2,\)"
    ):
        jaxloss.hessian_vector_product(*args, {"a": jnp.ones(2), "b": jnp.zeros(())})
    with pytest.raises(
        TypeError, match=r"`vector` leaf 1 must have the dtype .*float32; got int32"
    ):
        jaxloss.hessian_vector_product(*args, {"a": jnp.ones(3), "b": jnp.int32(0)})
    # H = 2 [XᵀX, Xᵀ1; 1ᵀX, N]: check the matching case against NumPy.
    hv = jaxloss.hessian_vector_product(*args, {"a": jnp.ones(3), "b": jnp.float32(1.0)})
    chex.assert_trees_all_close(
        hv, {"a": 2 * (H @ np.ones(3) + X.sum(0)), "b": 2 * (X.sum(0).sum() + len(X))}, rtol=1e-5
    )


# --------------------------------------------------------------------- any pytree of params

# Every kind of leaf: L = c/2 Σ ((s·XW − Y) ⊙ m)² where only W trains; the counter c (int32), the
# column mask m (bool) and the activation z ↦ s·z (a Python callable) pass through. By hand:
# g = c s Xᵀ((sXW − Y) ⊙ m), H v = c s² Xᵀ(XV ⊙ m), λ_max(H) = c s² λ_max(XᵀX) (m has a True).
W = rng.normal(size=(3, 2))
Y2 = rng.normal(size=(8, 2))
MASK = np.array([True, False])
SCALE = 2.0


def masked_objective(p, x, y):
    residual = jnp.where(p["mask"][None, :], p["act"](x @ p["w"]) - y, 0.0)
    return 0.5 * p["count"] * jnp.sum(residual**2)


def masked_tree(count):
    return {
        "w": jnp.asarray(W),
        "count": jnp.int32(count),
        "mask": jnp.asarray(MASK),
        "act": lambda z: SCALE * z,
    }


def masked_numpy(count, v):
    residual = (SCALE * X @ W - Y2) * MASK
    loss = 0.5 * count * np.sum(residual**2)
    g = count * SCALE * X.T @ residual
    hv = count * SCALE**2 * X.T @ ((X @ v) * MASK)
    return loss, g, hv


@pytest.mark.x64
def test_any_pytree_trains_float_leaves_and_passes_the_rest_through():
    counted, traces = counting(masked_objective)

    tree, x, y = masked_tree(3), jnp.asarray(X), jnp.asarray(Y2)
    v = rng.normal(size=W.shape)
    loss, g, hv_numpy = masked_numpy(3, v)
    # The vector's leaves other than W are ignored; H v keeps the params' own other leaves.
    vector = {"w": jnp.asarray(v), "count": jnp.int32(7), "mask": jnp.zeros(2, bool), "act": "x"}
    hv = jaxloss.hessian_vector_product(masked_objective, tree, x, y, vector)
    chex.assert_trees_all_close(hv["w"], hv_numpy, rtol=1e-12)
    assert hv["count"] is tree["count"] and hv["mask"] is tree["mask"] and hv["act"] is tree["act"]

    lam = jaxloss.top_hessian_eigenvalue(masked_objective, tree, x, y, iters=200, key=0)
    chex.assert_trees_all_close(lam, 3 * SCALE**2 * np.linalg.eigvalsh(X.T @ X).max(), rtol=1e-8)

    report = jaxloss.taylor_check(counted, tree, x, y)
    chex.assert_trees_all_close(
        [report.loss, report.grad_norm_sq], [loss, np.sum(g**2)], rtol=1e-12
    )
    # A quadratic in W: the second-order prediction is the actual change.
    np.testing.assert_allclose(report.actual, report.predicted_second, rtol=1e-9, atol=1e-12)
    assert "first_order" in report.regime and abs(report.remainder_slope - 2) < 1e-3
    # The counter is a traced array: a new value changes L without a new compilation.
    seen = traces["n"]
    five = jaxloss.taylor_check(counted, {**tree, "count": jnp.int32(5)}, x, y)
    chex.assert_trees_all_close(five.loss, masked_numpy(5, v)[0], rtol=1e-12)
    assert traces["n"] == seen


# ------------------------------------------------------------------ any direction d


@pytest.mark.x64
def test_direction_minus_gradient_is_the_default():
    f, theta, x, y = quadratic_args()
    default = jaxloss.taylor_check(f, theta, x, y)
    along = jaxloss.taylor_check(f, theta, x, y, direction=-jax.grad(f)(theta, x, y))
    assert (default.direction, along.direction) == ("gradient", "given")
    for name in ("learning_rates", "predicted_first", "predicted_second", "actual", "ratio"):
        chex.assert_trees_all_close(getattr(along, name), getattr(default, name), rtol=1e-12)
    assert along.regime == default.regime
    chex.assert_trees_all_close(along.directional_derivative, -(G @ G), rtol=1e-12)
    chex.assert_trees_all_close(along.predicted_best, default.predicted_best, rtol=1e-12)
    assert along.summary().splitlines()[0].startswith("Taylor check of L(θ + ηd) − L(θ)")
    assert default.summary().splitlines()[0].startswith("Taylor check of L(θ − ηg) − L(θ)")


def test_direction_of_optax_steps(mlp_problem):
    """The second update of SGD with momentum and of Adam, checked as a direction:
    the first-order prediction η gᵀd holds at small η, the remainder falls like η²."""
    apply_fn, params, x, y = mlp_problem
    f = jaxloss.objective(apply_fn, ce)
    grad = jax.grad(f)

    @jax.jit
    def step_then_direction(p, momentum_state, adam_state):
        points = []
        for tx, state in ((momentum, momentum_state), (adam, adam_state)):
            update, state = tx.update(grad(p, x, y), state, p)
            q = optax.apply_updates(p, update)
            points.append((q, tx.update(grad(q, x, y), state, q)[0], grad(q, x, y)))
        return points

    momentum, adam = optax.sgd(0.1, momentum=0.9), optax.adam(0.01)
    points = step_then_direction(params, momentum.init(params), adam.init(params))
    for p, d, g in points:
        report = jaxloss.taylor_check(f, p, x, y, direction=d)
        gd = sum(np.vdot(a, b) for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(d)))
        assert gd < 0  # both steps go downhill here
        chex.assert_trees_all_close(report.directional_derivative, gd, rtol=1e-10)
        etas = report.learning_rates
        chex.assert_trees_all_close(report.predicted_first, etas * gd, rtol=1e-12)
        # actual = L(θ + ηd) − L(θ), evaluated here on its own at a few η.
        loss = jax.jit(f)
        for i in (10, 30, 50):
            moved = jax.tree.map(lambda a, b, e=etas[i]: a + e * b, p, d)
            chex.assert_trees_all_close(
                report.actual[i], loss(moved, x, y) - loss(p, x, y), rtol=1e-6
            )
        small = etas < 1e-4 * report.predicted_best
        assert small.sum() >= 20
        chex.assert_trees_all_close(report.ratio[small], 1.0, atol=1e-4)
        assert abs(report.remainder_slope - 2) <= 0.05


@pytest.mark.x64
def test_ascent_direction_is_labelled():
    f, theta, x, y = quadratic_args()
    gg, ghg = G @ G, G @ H @ G
    report = jaxloss.taylor_check(f, theta, x, y, direction=jnp.asarray(G))
    # Along +g: actual = η‖g‖² + ½η² gᵀHg > 0, first order while ½η gᵀHg/‖g‖² ≤ rtol.
    chex.assert_trees_all_close(report.directional_derivative, gg, rtol=1e-12)
    etas, regime = report.learning_rates, np.array(report.regime)
    chex.assert_trees_all_close(etas, gg / ghg * np.logspace(-8, 2, 64), rtol=1e-12)
    assert set(regime[etas <= 0.2 * gg / ghg]) == {"first_order"}
    assert set(regime[etas > 0.2 * gg / ghg]) == {"increase"}
    assert np.isnan(report.predicted_best) and np.isnan(report.predicted_increase_from)
    assert "NOT descent" in report.summary()
    chex.assert_trees_all_close(report.remainder_slope, 2.0, atol=1e-3)


def test_direction_must_match_params():
    f, theta, x, y = quadratic_args(np.float32)
    with pytest.raises(ValueError, match=r"taylor_check: `direction` must have the pytree"):
        jaxloss.taylor_check(f, theta, x, y, direction=[theta])
    with pytest.raises(ValueError, match=r"taylor_check: `direction` leaf 0 must have the shape"):
        jaxloss.taylor_check(f, theta, x, y, direction=jnp.ones(2))
    with pytest.raises(TypeError, match=r"`direction` leaf 0 must have the dtype .*float32; got"):
        jaxloss.taylor_check(f, theta, x, y, direction=jnp.ones(3, jnp.float16))


# ---------------------------------------------------------------------- results that last


def assert_same_report(back, report):
    assert type(back) is jaxloss.TaylorReport
    for name, value in vars(report).items():
        other = getattr(back, name)
        if isinstance(value, np.ndarray):
            assert other.dtype == np.float64
            np.testing.assert_array_equal(other, value)  # NaN where NaN
        elif isinstance(value, float) and np.isnan(value):
            assert isinstance(other, float) and np.isnan(other)
        else:
            assert type(other) is type(value) and other == value, name


def test_report_round_trips_through_json_and_pickle():
    f, theta, x, y = quadratic_args(np.float32)
    reports = [
        jaxloss.taylor_check(f, theta, x, y),
        # g = 0: NaN ratios, curvature and slope (None in JSON).
        jaxloss.taylor_check(f, jnp.zeros(3), jnp.eye(3), jnp.zeros(3)),
    ]
    assert np.isnan(reports[1].ratio).all() and np.isnan(reports[1].curvature)
    for report in reports:
        text = json.dumps(report.to_dict(), allow_nan=False)
        assert_same_report(jaxloss.TaylorReport.from_dict(json.loads(text)), report)
        assert_same_report(pickle.loads(pickle.dumps(report)), report)
    with pytest.raises(ValueError, match=r"TaylorReport.from_dict: `data` lacks the keys \['loss'"):
        jaxloss.TaylorReport.from_dict(
            {k: v for k, v in reports[0].to_dict().items() if k != "loss"}
        )
