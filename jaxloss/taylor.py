"""The Taylor check: predicted against actual loss change along a direction, for many η at once.

Gradient descent rests on the first-order Taylor expansion `L(θ − ηg) − L(θ) ≈ −η‖g‖²`. The
second-order term `½η² gᵀHg` says where it breaks: the quadratic model is best at
`η = ‖g‖²/gᵀHg` and predicts a rise of the loss from `η = 2‖g‖²/gᵀHg`. `taylor_check` computes
`g = ∇L(θ)` once, one Hessian-vector product `Hg` (forward over reverse), and `L(θ − ηg)` for every
η in one compiled, vmapped call, and labels where each regime holds. The remainder
`|actual − predicted_first|` falls like η² when `g` is the true gradient of `L` (a log-log slope of
2, as in pyadjoint's Taylor test), like η when it is not. Along any other direction `d` (an Adam
or momentum step) the same holds with `gᵀd` for `−‖g‖²` and `dᵀHd` for `gᵀHg`.

Any pytree of parameters: the floating-point array leaves are differentiated, every other leaf
(an integer counter, a boolean mask, a Python callable) is passed to the objective unchanged
(equinox's filter rule, `jaxloss._trees.partition`).

Precision: everything is evaluated in the parameters' dtype. In float32 the change of L is lost
in roundoff below η ≈ ε|L|/‖g‖² (ε ≈ 1.2e-7); enable float64 (`jax.config.update(
"jax_enable_x64", True)` and float64 parameters) to see the first-order regime down to tiny η.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _checks, _trees
from jaxloss.objective import num_samples

# Default grid: 64 values η_ref·10^[-8, 2], η_ref = |gᵀd|/|dᵀHd| (the quadratic model's best η;
# ‖g‖²/|gᵀHg| along d = −g).
# Relative to η_ref the regimes sit at fixed places (first order up to ≈ 2·rtol·η_ref, the rise
# from 2·η_ref), whatever the scale of the loss; 10^-8 reaches float32 roundoff for typical
# losses, 10^2 shows the loss rising well past the predicted 2·η_ref.
_DEFAULT_NUM = 64
_DEFAULT_DECADES = (-8.0, 2.0)
# |ΔL| below this many ε·(|L(θ)| + |L(θ + ηd)|) is roundoff: the two values differ by rounding.
_ROUNDOFF_ULPS = 8.0
# The remainder slope uses only remainders this many times above roundoff (a bias below 10%).
_SLOPE_ABOVE_ROUNDOFF = 10.0
REGIMES = ("roundoff", "first_order", "curvature", "increase", "non_finite")


def _vdot(a: Any, b: Any) -> jax.Array:
    return sum(jnp.sum(x * y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _hvp(f: Callable[[Any], jax.Array], params: Any, vector: Any) -> Any:
    # Forward over reverse: one jvp of the gradient, about the cost of two gradients.
    return jax.jvp(jax.grad(f), (params,), (vector,))[1]


def _on_trainable(objective_fn, spec, frozen, inputs, targets):
    """The objective as a function of the trainable leaves alone (the rest put back in place)."""
    return lambda trainable: objective_fn(_trees.combine(spec, trainable, frozen), inputs, targets)


def _tangent(fn: str, name: str, spec: _trees.TreeSpec, trainable: Any, tree: Any) -> tuple:
    """The leaves of `tree` (shaped like `params`) where `params` has trainable leaves, as jax
    arrays; they must match those leaves in shape and dtype. Its other leaves are ignored."""
    leaves, treedef = jax.tree.flatten(tree)
    if treedef != spec.treedef:
        raise ValueError(
            f"jaxloss.{fn}: `{name}` must have the pytree structure of `params` {spec.treedef}; "
            f"got {treedef}."
        )
    positions = _trees.trainable_positions(spec)
    for i, p in zip(positions, trainable):
        v = leaves[i]
        if jnp.shape(p) != jnp.shape(v):
            raise ValueError(
                f"jaxloss.{fn}: `{name}` leaf {i} must have the shape of the params leaf "
                f"{jnp.shape(p)}; got {jnp.shape(v)}."
            )
        if jnp.result_type(p) != jnp.result_type(v):
            raise TypeError(
                f"jaxloss.{fn}: `{name}` leaf {i} must have the dtype of the params leaf "
                f"{jnp.result_type(p)}; got {jnp.result_type(v)}."
            )
    return tuple(jnp.asarray(leaves[i]) for i in positions)


def hessian_vector_product(
    objective_fn: Callable[[Any, Any, Any], jax.Array],
    params: Any,
    inputs: Any,
    targets: Any,
    vector: Any,
) -> Any:
    """The Hessian of the objective times a vector, `H v = ∂/∂ε ∇L(θ + εv)`, never forming H.

    H is the Hessian with respect to the floating-point array leaves of `params`; its other
    leaves (integer counters, boolean masks, Python callables) are passed to the objective
    unchanged.

    Args:
        objective_fn: `f(params, inputs, targets) -> scalar`, e.g. from `jaxloss.objective`.
        params: θ, a pytree with at least one floating-point array leaf.
        inputs, targets: the data passed to `objective_fn`.
        vector: v, a pytree with the structure of `params` whose leaves at the floating-point
            leaves of `params` have their shapes and dtypes (another structure or shape is a
            ValueError, another dtype a TypeError); its other leaves are ignored.

    Returns:
        `H v`, a pytree like `params`: `H v` at its floating-point leaves, its other leaves
        as they are in `params`.

    Example:
        >>> x, y = jaxloss.spirals(64, classes=3, key=0)
        >>> init_fn, apply_fn = jaxloss.mlp([2, 16, 3])
        >>> f = jaxloss.objective(apply_fn, jaxloss.softmax_cross_entropy_with_integer_labels)
        >>> params = init_fn(jax.random.key(0))
        >>> hvp = jax.jit(jaxloss.hessian_vector_product, static_argnums=0)  # compiled once
        >>> hv = hvp(f, params, x, y, params)
        >>> jax.tree.map(jnp.shape, hv)
        [{'b': (16,), 'w': (2, 16)}, {'b': (3,), 'w': (16, 3)}]

    Reference: Pearlmutter, "Fast exact multiplication by the Hessian", Neural Computation 6 (1994);
    computed forward-over-reverse as in the JAX autodiff cookbook.
    """
    fn = "hessian_vector_product"
    trainable, frozen, spec = _trees.partition(fn, "params", params)
    v = _tangent(fn, "vector", spec, trainable, vector)
    hv = _hvp(_on_trainable(objective_fn, spec, frozen, inputs, targets), trainable, v)
    return _trees.combine(spec, hv, frozen)


def _normalise(v: Any) -> Any:
    norm = jnp.sqrt(_vdot(v, v))
    norm = jnp.where(norm > 0, norm, 1)  # H v = 0: keep the zero vector, eigenvalue 0
    return jax.tree.map(lambda x: x / norm.astype(x.dtype), v)


def power_iteration(matvec: Callable[[Any], Any], start: Any, iters: int) -> tuple[jax.Array, Any]:
    """`(λ, v)` after `iters` steps of power iteration on `matvec` (a symmetric operator on
    pytrees like `start`): λ is the Rayleigh quotient of the last unit vector, v the next unit
    vector (pass it back as `start` to warm-start from where it stopped)."""

    def body(_, carry):
        v, _ = carry
        hv = matvec(v)
        return _normalise(hv), _vdot(v, hv)

    v0 = _normalise(start)
    eigenvalue, vector = jax.lax.fori_loop(0, iters, body, (v0, _vdot(v0, v0) * 0))[::-1]
    return eigenvalue, vector


def _top_eigenvalue(objective_fn, spec, trainable, frozen, inputs, targets, iters, key):
    f = _on_trainable(objective_fn, spec, frozen, inputs, targets)
    keys = jax.random.split(key, len(trainable))
    start = tuple(jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, trainable))
    return power_iteration(lambda v: _hvp(f, trainable, v), start, iters)[0]


_top_eigenvalue_jit = jax.jit(_top_eigenvalue, static_argnums=(0, 1))


def top_hessian_eigenvalue(
    objective_fn: Callable[[Any, Any, Any], jax.Array],
    params: Any,
    inputs: Any,
    targets: Any,
    *,
    iters: int = 50,
    key: jax.Array,
) -> jax.Array:
    """The largest-magnitude eigenvalue λ of the Hessian of the objective, by power iteration.

    `v ← Hv/‖Hv‖` from a random start, `iters` times, each a Hessian-vector product; returns the
    Rayleigh quotient `vᵀHv`. For a convex objective it is λ_max, and gradient descent on the
    local quadratic model is stable only for `η < 2/λ_max`. Convergence goes like
    `|λ₂/λ₁|^iters`. H is the Hessian with respect to the floating-point array leaves of
    `params`; its other leaves are passed to the objective unchanged.

    Args:
        objective_fn: `f(params, inputs, targets) -> scalar`, e.g. from `jaxloss.objective`.
        params: θ, a pytree with at least one floating-point array leaf.
        inputs, targets: the data passed to `objective_fn`.
        iters: number of power iterations, an integer ≥ 1 (new values do not recompile).
        key: a `jax.random` key (or an int seed) for the random start.

    Returns:
        `()` λ in the parameters' dtype.

    Example:
        >>> x, y = jaxloss.spirals(64, classes=3, key=0)
        >>> init_fn, apply_fn = jaxloss.mlp([2, 16, 3])
        >>> f = jaxloss.objective(apply_fn, jaxloss.softmax_cross_entropy_with_integer_labels)
        >>> lam = jaxloss.top_hessian_eigenvalue(f, init_fn(jax.random.key(0)), x, y, key=0)
        >>> lam, 2 / lam  # full-batch gradient descent is stable below about 2/λ
        (Array(0.60..., dtype=float32), Array(3.3..., dtype=float32))

    Reference: von Mises power iteration (Golub & Van Loan, *Matrix Computations*, §7.3); the
    2/λ_max bound e.g. Cohen et al., "Gradient descent on neural networks typically occurs at the
    edge of stability" (ICLR 2021).
    """
    fn = "top_hessian_eigenvalue"
    trainable, frozen, spec = _trees.partition(fn, "params", params)
    num_samples(fn, inputs, targets)
    iters = _checks.integer(fn, "iters", iters, low=1, high=2**31 - 1)  # a traced int32
    key = _checks.prng_key(fn, "key", key)
    return _top_eigenvalue_jit(
        objective_fn, spec, trainable, frozen, inputs, targets, jnp.int32(iters), key
    )


# ------------------------------------------------------------------------------ Taylor check


def _taylor_impl(
    objective_fn, default_grid, spec, trainable, frozen, inputs, targets, direction, etas
):
    f = _on_trainable(objective_fn, spec, frozen, inputs, targets)
    loss, g = jax.value_and_grad(f)(trainable)
    gg = _vdot(g, g)
    if direction is None:
        # d = −g; negation is exact, so this is the check along the gradient bit for bit.
        d = jax.tree.map(jnp.negative, g)
        gd, dd = -gg, gg
    else:
        d = direction
        gd, dd = _vdot(g, d), _vdot(d, d)
    dhd = _vdot(d, _hvp(f, trainable, d))
    if default_grid:
        # η_ref = |gᵀd|/|dᵀHd|; without curvature fall back to |L|/|gᵀd| (where η gᵀd = ∓|L|).
        slope = jnp.abs(gd)
        ok = jnp.isfinite(dhd) & (dhd != 0)
        fallback = jnp.where(slope > 0, jnp.abs(loss) / jnp.where(slope > 0, slope, 1), 1)
        fallback = jnp.where(fallback > 0, fallback, 1)
        scale = jnp.where(ok, slope / jnp.where(ok, jnp.abs(dhd), 1), fallback)
        etas = etas * scale.astype(etas.dtype)

    def moved(eta):
        step = jax.tree.map(
            lambda p, di: (p + eta.astype(di.dtype) * di).astype(p.dtype), trainable, d
        )
        return f(step)

    return loss, gg, gd, dd, dhd, etas, jax.vmap(moved)(etas)


_taylor_jit = jax.jit(_taylor_impl, static_argnums=(0, 1, 2))


@dataclasses.dataclass(frozen=True)
class TaylorReport:
    """The outcome of `jaxloss.taylor_check`; arrays are `(M,)` NumPy float64, one per η.

    Along the gradient (the default `d = −g`) `gᵀd = −‖g‖²` and `dᵀHd = gᵀHg`.

    Attributes:
        learning_rates: η, increasing.
        predicted_first: `η gᵀd` (`−η‖g‖²` along the gradient).
        predicted_second: `η gᵀd + ½η² dᵀHd`.
        actual: `L(θ + ηd) − L(θ)` as computed in the parameters' dtype.
        ratio: `actual / predicted_first` (NaN where `gᵀd = 0`).
        regime: one label per η: `"roundoff"` (|actual| within roundoff of L), `"first_order"`
            (|ratio − 1| ≤ rtol), `"curvature"` (the loss falls, first order is off), `"increase"`
            (the loss rises, first order is off), `"non_finite"` (L(θ + ηd) is NaN).
        loss: L(θ). grad_norm_sq: ‖g‖². directional_derivative: gᵀd, negative for a descent
            direction (along an ascent direction the loss rises from the smallest η, and the
            predicted best η and rise are NaN). curvature: dᵀHd/‖d‖².
        direction: `"gradient"` (d = −g, the default) or `"given"`.
        first_order_valid_up_to: the largest η labelled `"first_order"` (NaN if none).
        best_learning_rate: the η with the most negative `actual`.
        predicted_best: −gᵀd/dᵀHd, the optimum of the quadratic model (NaN unless gᵀd < 0 and
            dᵀHd > 0).
        increase_from: the smallest η labelled `"increase"` (NaN if none).
        predicted_increase_from: −2gᵀd/dᵀHd (NaN when predicted_best is).
        remainder_slope: least-squares slope of log|actual − predicted_first| against log η over
            the first-order η whose remainder is 10× above roundoff: ≈ 2 for a correct gradient, ≈ 1
            for a wrong one (NaN with fewer than 3 such η).
        rtol: the tolerance used for `"first_order"`. dtype: the dtype the check ran in.

    `to_dict()` gives strict JSON (NaN → None), `TaylorReport.from_dict` reads it back.
    """

    learning_rates: np.ndarray
    predicted_first: np.ndarray
    predicted_second: np.ndarray
    actual: np.ndarray
    ratio: np.ndarray
    regime: tuple[str, ...]
    loss: float
    grad_norm_sq: float
    directional_derivative: float
    curvature: float
    direction: str
    first_order_valid_up_to: float
    best_learning_rate: float
    predicted_best: float
    increase_from: float
    predicted_increase_from: float
    remainder_slope: float
    rtol: float
    dtype: str

    def summary(self) -> str:
        """A readable table: the scalars, then one row per η. Print it."""
        slope = self.remainder_slope
        if math.isnan(slope):
            verdict = "too few first-order points above roundoff to tell"
        elif abs(slope - 2) <= 0.2:
            verdict = "≈ 2: the gradient matches the loss"
        else:
            verdict = "≠ 2: the gradient does NOT match the loss"
        if self.direction == "gradient":
            change = "L(θ − ηg) − L(θ)"
            first_term = f"  ‖g‖²                            {self.grad_norm_sq:.4e}"
            curvature = "gᵀHg/‖g‖²"
        else:
            change = "L(θ + ηd) − L(θ)"
            kind = "descent" if self.directional_derivative < 0 else "NOT descent: the loss rises"
            first_term = (
                f"  gᵀd                             {self.directional_derivative:.4e} ({kind})"
            )
            curvature = "dᵀHd/‖d‖²"
        lines = [
            f"Taylor check of {change}, {self.dtype}, {len(self.learning_rates)} "
            f"learning rates, rtol {self.rtol:g}",
            f"  loss L(θ)                       {self.loss:.6g}",
            first_term,
            f"  curvature {curvature}             {self.curvature:.4e}",
            f"  first order valid up to η       {self.first_order_valid_up_to:.3e}",
            f"  best η: measured / predicted    {self.best_learning_rate:.3e} / "
            f"{self.predicted_best:.3e}",
            f"  loss rises from η: meas./pred.  {self.increase_from:.3e} / "
            f"{self.predicted_increase_from:.3e}",
            f"  remainder slope                 {slope:.3f} ({verdict})",
            "",
            f"  {'η':>10}  {'predicted_first':>15}  {'predicted_second':>16}  {'actual':>11}  "
            f"{'ratio':>9}  regime",
        ]
        for row in zip(
            self.learning_rates,
            self.predicted_first,
            self.predicted_second,
            self.actual,
            self.ratio,
            self.regime,
        ):
            eta, first, second, actual, ratio, regime = row
            lines.append(
                f"  {eta:10.3e}  {first:15.4e}  {second:16.4e}  {actual:11.4e}  {ratio:9.4f}  "
                f"{regime}"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (lists, floats, strings); NaN and ±inf become None (strict JSON:
        `json.dumps(report.to_dict(), allow_nan=False)` works)."""
        return {f.name: _trees.to_json(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaylorReport:
        """The report `to_dict()` (or its JSON) describes; None reads back as NaN."""
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in data]
        if missing:
            raise ValueError(
                f"jaxloss.TaylorReport.from_dict: `data` lacks the keys {missing} (expected "
                "the dict of TaylorReport.to_dict())."
            )
        values = {}
        for f in dataclasses.fields(cls):
            value = data[f.name]
            if f.type == "np.ndarray":
                value = _trees.from_json(value, np.float64)
            elif f.type == "float":
                value = float(_trees.from_json(value, np.float64))
            elif f.type.startswith("tuple"):
                value = tuple(value)
            values[f.name] = value
        return cls(**values)


def taylor_check(
    objective_fn: Callable[[Any, Any, Any], jax.Array],
    params: Any,
    inputs: Any,
    targets: Any,
    *,
    direction: Any = None,
    learning_rates: Any = None,
    rtol: float = 0.1,
) -> TaylorReport:
    """Measure `L(θ + ηd) − L(θ)` against its first- and second-order Taylor predictions.

    `predicted_first = η gᵀd`, `predicted_second = η gᵀd + ½η² dᵀHd` with `g = ∇L(θ)` and one
    Hessian-vector product `Hd`; `actual = L(θ + ηd) − L(θ)` for every η in one vmapped call. The
    default direction `d = −g` is the gradient-descent step: `−η‖g‖²` and `+ ½η² gᵀHg`. All of it
    is one compiled program (per objective function, argument shapes and non-array leaves).

    Only the floating-point array leaves of `params` move and are differentiated; the others
    (integer counters, boolean masks, Python callables) reach the objective unchanged.

    Args:
        objective_fn: `f(params, inputs, targets) -> scalar`, e.g. from `jaxloss.objective`.
        params: θ, a pytree with at least one floating-point array leaf; the check runs in their
            dtype.
        inputs, targets: the data passed to `objective_fn`.
        direction: d, a pytree with the structure of `params` whose leaves at the floating-point
            leaves of `params` have their shapes and dtypes (its other leaves are ignored), e.g.
            the update of an Adam or momentum step; default `−∇L(θ)`. An ascent direction
            (`gᵀd > 0`) is checked too: the report says so and its predicted best η is NaN.
            η scales d: with an optimizer's update as d, η = 1 is the optimizer's own step.
        learning_rates: `(M,)` positive η values; default 64 log-spaced values from 1e-8 to 1e2
            times `|gᵀd|/|dᵀHd|` (`‖g‖²/|gᵀHg|` along the gradient), which shows every regime
            whatever the scale of the loss.
        rtol: tolerance on `|actual/predicted_first − 1|` for the first-order regime, in (0, 1).

    Returns:
        `TaylorReport`: per-η arrays, regime labels and scalars; `print(report.summary())`,
        `report.to_dict()` for JSON, `TaylorReport.from_dict` to read it back.

    Example:
        >>> x, y = jaxloss.spirals(64, classes=3, key=0)
        >>> init_fn, apply_fn = jaxloss.mlp([2, 16, 3])
        >>> f = jaxloss.objective(apply_fn, jaxloss.softmax_cross_entropy_with_integer_labels)
        >>> report = jaxloss.taylor_check(f, init_fn(jax.random.key(0)), x, y)
        >>> print(report.summary())
        Taylor check of L(θ − ηg) − L(θ), float32, 64 learning rates, rtol 0.1
        ...
          remainder slope                 2.0... (≈ 2: the gradient matches the loss)
        ...
        >>> report.regime[0], report.regime[40], report.regime[-1]
        ('roundoff', 'first_order', 'increase')

        `direction=` checks along any step, e.g. an Adam update (see the README).

    Reference: the Taylor remainder convergence test of pyadjoint / dolfin-adjoint
    (`taylor_test`, Farrell et al., SIAM J. Sci. Comput. 35 (2013)); Nocedal & Wright,
    *Numerical Optimization* (2006), §2.2 for the quadratic model.
    """
    fn = "taylor_check"
    trainable, frozen, spec = _trees.partition(fn, "params", params)
    dtype = jnp.result_type(*trainable)
    num_samples(fn, inputs, targets)
    _checks.in_range(fn, "rtol", rtol, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    if direction is not None:
        direction = _tangent(fn, "direction", spec, trainable, direction)
    default_grid = learning_rates is None
    if default_grid:
        grid = np.logspace(*_DEFAULT_DECADES, _DEFAULT_NUM)
    else:
        grid = np.asarray(learning_rates, dtype=np.float64)
        if grid.ndim != 1 or grid.size == 0:
            raise ValueError(
                "jaxloss.taylor_check: `learning_rates` must be a non-empty 1-D array; got shape "
                f"{grid.shape}."
            )
        _checks.in_range(fn, "learning_rates", grid, low=0.0, low_inclusive=False)
        grid = np.sort(grid)
    out = _taylor_jit(
        objective_fn,
        default_grid,
        spec,
        trainable,
        frozen,
        inputs,
        targets,
        direction,
        jnp.asarray(grid, dtype),
    )
    eps = float(jnp.finfo(jnp.result_type(out[0])).eps)  # the loss's dtype: its roundoff
    loss, gg, gd, dd, dhd, etas, trial = (np.asarray(v, np.float64) for v in jax.device_get(out))
    scalars = (float(loss), float(gg), float(gd), float(dd), float(dhd))
    label = "gradient" if direction is None else "given"
    return _report(etas, trial, *scalars, eps=eps, rtol=rtol, dtype=str(dtype), direction=label)


def _report(etas, trial, loss, gg, gd, dd, dhd, *, eps, rtol, dtype, direction) -> TaylorReport:
    first = etas * gd
    second = first + 0.5 * etas**2 * dhd
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        actual = trial - loss
        # + 0.0 turns the -0.0 of a change lost in roundoff into 0.0 in the table.
        ratio = np.where(first != 0, actual / np.where(first != 0, first, 1), np.nan) + 0.0
        noise = _ROUNDOFF_ULPS * eps * (abs(loss) + np.where(np.isfinite(trial), np.abs(trial), 0))
        remainder = np.abs(actual - first)
        # first_order before increase: along an ascent direction the loss rises in first order
        # (along a descent direction a rise has ratio < 0, never first order).
        regime = np.select(
            [
                np.isnan(actual),
                np.abs(actual) <= noise,
                np.abs(ratio - 1) <= rtol,
                actual > 0,
            ],
            ["non_finite", "roundoff", "first_order", "increase"],
            "curvature",
        )
        curvature = dhd / dd if dd > 0 else math.nan
        quad_best = -gd / dhd if dhd > 0 and gd < 0 else math.nan

    def extreme(label, pick):
        chosen = etas[regime == label]
        return float(pick(chosen)) if chosen.size else math.nan

    fit_points = (regime == "first_order") & (remainder > _SLOPE_ABOVE_ROUNDOFF * noise)
    if fit_points.sum() >= 3:
        slope = float(np.polyfit(np.log(etas[fit_points]), np.log(remainder[fit_points]), 1)[0])
    else:
        slope = math.nan
    finite = np.isfinite(actual)
    best = float(etas[finite][np.argmin(actual[finite])]) if finite.any() else math.nan
    return TaylorReport(
        learning_rates=etas,
        predicted_first=first,
        predicted_second=second,
        actual=actual,
        ratio=ratio,
        regime=tuple(str(r) for r in regime),
        loss=loss,
        grad_norm_sq=gg,
        directional_derivative=gd,
        curvature=curvature,
        direction=direction,
        first_order_valid_up_to=extreme("first_order", np.max),
        best_learning_rate=best,
        predicted_best=quad_best,
        increase_from=extreme("increase", np.min),
        predicted_increase_from=2 * quad_best,
        remainder_slope=slope,
        rtol=float(rtol),
        dtype=dtype,
    )
