"""Regression losses: squared, ½-squared and absolute error, their means, RMSE, Huber, log-cosh,
and the cosine similarity / distance of vectors.

MSE is the Gaussian negative log-likelihood up to constants (see `jaxloss.gaussian_nll`); MAE the
Laplace one. `squared_error`, `l2_loss`, `absolute_error`, `huber_loss` and `log_cosh` are
elementwise; `mse`, `rmse` and `mae` reduce the whole sample to a scalar; `cosine_similarity` and
`cosine_distance` reduce the vector axis (or axes) and return one value per remaining position.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxloss import _checks


def _errors(fn: str, predictions, targets) -> jax.Array:
    """`predictions − targets` after the shared checks."""
    predictions, targets = _checks.float_pair(fn, "predictions", predictions, "targets", targets)
    # A mean over no element has no value; a mask selecting nothing is a different, defined case.
    _checks.non_empty(fn, "predictions", predictions)
    _checks.not_nan(fn, "predictions", predictions)
    _checks.not_nan(fn, "targets", targets)
    return predictions - targets


def _masked_errors(fn: str, predictions, targets, where) -> tuple[jax.Array, jax.Array]:
    """The errors with masked-out ones set to 0, and the number of selected ones (at least 1).

    Zeroing the error itself (not the loss) keeps an inf or NaN at a masked position out of both
    the value and the gradient (`0 * inf` would be NaN in the backward pass).
    """
    errors = _errors(fn, predictions, targets)
    if where is None:
        return errors, jnp.asarray(errors.size, errors.dtype)
    where = _checks.real(fn, "where", where)
    _checks.mask_shape(fn, "where", where, errors.shape)
    count = jnp.maximum(jnp.sum(where), 1).astype(errors.dtype)
    return jnp.where(where, errors, 0), count


def _abs(errors: jax.Array) -> jax.Array:
    """|e| with derivative 0 at e = 0 (jnp.abs gives 1 there), as torch's l1_loss."""
    return jnp.where(errors == 0, 0, jnp.abs(errors))


def squared_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """Elementwise squared error `(predictions − targets)²`.

    Args:
      predictions: floating array, any shape.
      targets: array of the same shape.

    Returns:
      Array of `predictions.shape` (float32 for half-precision input).

    Example:
      >>> jaxloss.squared_error(jnp.array([1.0, 2.0]), jnp.array([0.0, 0.0]))
      Array([1., 4.], dtype=float32)

    Matches `optax.squared_error` (which, unlike this, broadcasts mismatched shapes).
    """
    return jnp.square(_errors("squared_error", predictions, targets))


def l2_loss(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """Elementwise half squared error `½(predictions − targets)²`, gradient `predictions − targets`.

    The ½ makes it the Gaussian negative log-likelihood with unit variance, up to a constant.

    Args:
      predictions: floating array, any shape.
      targets: array of the same shape.

    Returns:
      Array of `predictions.shape` (float32 for half-precision input).

    Example:
      >>> jaxloss.l2_loss(jnp.array([1.0, 2.0]), jnp.array([0.0, 0.0]))
      Array([0.5, 2. ], dtype=float32)

    Matches `optax.l2_loss` (which, unlike this, broadcasts mismatched shapes and lets `targets`
    default to zeros) and `torch.nn.functional.mse_loss(reduction='none') / 2`.
    """
    return 0.5 * jnp.square(_errors("l2_loss", predictions, targets))


def absolute_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """Elementwise absolute error `|predictions − targets|` (gradient 0 where they are equal).

    Args:
      predictions: floating array, any shape.
      targets: array of the same shape.

    Returns:
      Array of `predictions.shape`.

    Example:
      >>> jaxloss.absolute_error(jnp.array([1.0, -2.0]), jnp.array([0.0, 0.0]))
      Array([1., 2.], dtype=float32)

    Matches `torch.nn.functional.l1_loss(..., reduction='none')`.
    """
    return _abs(_errors("absolute_error", predictions, targets))


def mse(predictions: jax.Array, targets: jax.Array, *, where: jax.Array | None = None) -> jax.Array:
    """Mean squared error of one sample: `Σ_i w_i (p_i − t_i)² / Σ_i w_i` over all its elements.

    Args:
      predictions: floating array, any shape (one sample; pass a batch to get the batch mean).
      targets: array of the same shape.
      where: optional boolean mask of the same shape; the mean runs over the selected elements.
        With nothing selected the result is 0 with a zero gradient (a size-0 array, by
        contrast, is a ValueError: it has no mean).

    Returns:
      Scalar. NaN if an input (selected by `where`) is NaN; `jaxloss.checked` raises there.

    Example:
      >>> jaxloss.mse(jnp.array([1.0, 3.0]), jnp.array([0.0, 0.0]))
      Array(5., dtype=float32)

    Matches `torch.nn.functional.mse_loss(reduction='mean')` and `optax.squared_error(...).mean()`.
    """
    errors, count = _masked_errors("mse", predictions, targets, where)
    return jnp.sum(jnp.square(errors)) / count


def rmse(
    predictions: jax.Array, targets: jax.Array, *, where: jax.Array | None = None
) -> jax.Array:
    """Root mean squared error `√mse`, with a zero (finite) gradient where the error is 0.

    Args:
      predictions: floating array, any shape.
      targets: array of the same shape.
      where: optional boolean mask, as in `mse`.

    Returns:
      Scalar. NaN if an input (selected by `where`) is NaN; `jaxloss.checked` raises there.

    Example:
      >>> jaxloss.rmse(jnp.array([3.0, 4.0]), jnp.array([0.0, 0.0]))  # √((9 + 16) / 2)
      Array(3.535534, dtype=float32)

    `torch.sqrt(F.mse_loss(...))` and Keras' RMSE give NaN/inf gradients at zero error: d√m/dm is
    infinite at 0. Here 0 (a valid subgradient) is used there.
    """
    errors, count = _masked_errors("rmse", predictions, targets, where)
    # Scaled (rmse is homogeneous, so the gradient is unchanged): e² would underflow to 0 from
    # |e| ~ 1e-19 in float32, or overflow from ~ 1e19.
    scale = _norm_scale(errors, None, keepdims=False)
    mean_square = jnp.sum(jnp.square(errors / scale)) / count
    # Double where: sqrt's derivative at 0 is infinite, so differentiate only a safe argument.
    # Test `== 0`, not `> 0`: a NaN mean square must stay NaN.
    zero = mean_square == 0
    safe = jnp.where(zero, 1, mean_square)
    return scale * jnp.where(zero, 0, jnp.sqrt(safe))


def mae(predictions: jax.Array, targets: jax.Array, *, where: jax.Array | None = None) -> jax.Array:
    """Mean absolute error of one sample: `Σ_i w_i |p_i − t_i| / Σ_i w_i`.

    Args:
      predictions: floating array, any shape.
      targets: array of the same shape.
      where: optional boolean mask, as in `mse`.

    Returns:
      Scalar.

    Example:
      >>> jaxloss.mae(jnp.array([1.0, -3.0]), jnp.array([0.0, 0.0]))
      Array(2., dtype=float32)

    Matches `torch.nn.functional.l1_loss(reduction='mean')`.
    """
    errors, count = _masked_errors("mae", predictions, targets, where)
    return jnp.sum(_abs(errors)) / count


def huber_loss(predictions: jax.Array, targets: jax.Array, *, delta: float = 1.0) -> jax.Array:
    """Elementwise Huber loss: `½e²` for `|e| ≤ δ`, else `δ(|e| − ½δ)`, with `e = p − t`.

    Quadratic near zero (like MSE), linear in the tails (like MAE, robust to outliers), with a
    continuous first derivative at `|e| = δ`.

    Args:
      predictions: floating array, any shape.
      targets: array of the same shape.
      delta: the switch point, a scalar in (0, inf]; `inf` is the limit `½e²` everywhere. May be
        traced: a traced `delta` ≤ 0 (or NaN) gives NaN, and `jaxloss.checked` raises.

    Returns:
      Array of `predictions.shape`; NaN where an input is NaN.

    Example:
      >>> jaxloss.huber_loss(jnp.array([0.5, 3.0]), jnp.array([0.0, 0.0]))
      Array([0.125, 2.5  ], dtype=float32)

    Matches `optax.huber_loss` and `torch.nn.functional.huber_loss(reduction='none')`.
    Reference: Huber, "Robust Estimation of a Location Parameter", 1964.
    """
    fn = "huber_loss"
    abs_error = jnp.abs(_errors(fn, predictions, targets))
    _checks.scalar(fn, "delta", delta)
    valid = _checks.hyperparameter_ok(fn, "delta", delta, low=0, low_inclusive=False)
    delta = jnp.asarray(delta, abs_error.dtype)
    # min/max form: one expression, no branch to differentiate through.
    quadratic = jnp.minimum(abs_error, delta)
    linear = abs_error - quadratic
    # The linear part's slope is δ only where |e| ≥ δ: δ = inf would otherwise give inf · 0 = NaN
    # in the value and in the gradient. (At |e| = δ, min's derivative splits ½/½: the total is δ.)
    slope = jnp.where(abs_error >= delta, delta, 0)
    loss = 0.5 * jnp.square(quadratic) + slope * linear
    return jnp.where(valid, loss, jnp.nan)


# ------------------------------------------------------------------------------------ log-cosh

_LOG2 = math.log(2.0)


@jax.custom_jvp
def _log_cosh(e: jax.Array) -> jax.Array:
    a = jnp.abs(e)
    near = a < 1
    # Near 0, log cosh e = log1p(cosh e − 1) with cosh e − 1 = s² / (2(1 + s)), s = expm1(|e|): no
    # cancellation (optax's logaddexp(e, −e) − log 2 cancels to 0 below |e| ≈ 3e-4 in float32).
    s = jnp.expm1(jnp.where(near, a, 0))  # the unused branch never overflows
    small = jnp.log1p(s * s / (2 * (1 + s)))
    # Far from 0, |e| − log 2 + log1p(exp(−2|e|)): no cosh to overflow, and no cancellation
    # since the result is at least log cosh 1 ≈ 0.43.
    large = (a - _LOG2) + jnp.log1p(jnp.exp(-2 * a))
    return jnp.where(near, small, large)


@_log_cosh.defjvp
def _log_cosh_jvp(primals, tangents):
    # d/de log cosh e = tanh e: bounded and exact everywhere (±1 at ±inf); its own derivative
    # 1 − tanh² gives the second order.
    (e,), (de,) = primals, tangents
    return _log_cosh(e), jnp.tanh(e) * de


def log_cosh(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """Elementwise log-cosh loss `log(cosh(e))`, `e = predictions − targets`.

    About `½e²` for small `|e|` and `|e| − log 2` for large `|e|`: like Huber, but smooth (twice
    differentiable). Its gradient is `tanh(e)`.

    Args:
      predictions: floating array, any shape.
      targets: array of the same shape.

    Returns:
      Array of `predictions.shape`; NaN where an input is NaN (`jaxloss.checked` raises there),
      `inf` with gradient ±1 where `e` is ±inf.

    Example:
      >>> jaxloss.log_cosh(jnp.array([1e-4, 1e4]), jnp.zeros(2))  # ½e² and |e| − log 2
      Array([5.0000004e-09, 9.9993066e+03], dtype=float32)

    Matches `optax.log_cosh` to float32 roundoff for `|e| ≳ 0.1`. Below, optax's
    `logaddexp(e, −e) − log 2` loses digits to cancellation (relative error up to ~1e-7 / e²: 0.1%
    at 0.01, 7% at 1e-3, often exactly 0 below 3e-4); this is exact to float32 precision there
    (checked against mpmath). Both are finite for large `|e|`.
    Reference: Chen et al., "Log Hyperbolic Cosine Loss Improves Variational Auto-Encoder", 2019.
    """
    return _log_cosh(_errors("log_cosh", predictions, targets))


# ---------------------------------------------------------------------------------- cosine


def _axes(fn: str, axis: Any, ndim: int) -> tuple[int, ...]:
    """`axis` (an int, a tuple of ints or None for all) as sorted non-negative axes of `ndim`."""
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for item in items:
        try:
            a = _checks.integer(fn, "axis", item)
        except TypeError:
            raise TypeError(
                f"jaxloss.{fn}: `axis` must be an int, a tuple of ints or None; got {axis!r}."
            ) from None
        if not -ndim <= a < ndim:
            raise ValueError(
                f"jaxloss.{fn}: `axis` must lie in [{-ndim}, {ndim}) for `predictions` of "
                f"{ndim} dimension(s); got {axis!r}."
            )
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"jaxloss.{fn}: `axis` repeats an axis; got {axis!r}.")
    return tuple(sorted(out))


def _norm_scale(x: jax.Array, axes: Any, *, keepdims: bool) -> jax.Array:
    """max|x| over `axes` (1 where it is 0 or not finite), a constant for autodiff, to divide
    by before squaring so that Σx² neither underflows nor overflows."""
    scale = lax.stop_gradient(jnp.max(jnp.abs(x), axis=axes, keepdims=keepdims))
    scale = jnp.where(jnp.isfinite(scale) & (scale > 0), scale, 1)
    # Capped: XLA divides by multiplying with 1/scale, which flushes to 0 for scale > 1/tiny
    # (float32 x / 2e38 gives 0, not 0.5); scaled entries up to max^¼ still square safely.
    return jnp.minimum(scale, float(jnp.finfo(x.dtype).max) ** 0.75)


def _direction(x: jax.Array, axes: tuple[int, ...], min_norm: jax.Array):
    """`x / max(‖x‖, min_norm)` over `axes` (0 where that divisor is 0), the divisor, and whether
    `‖x‖ < min_norm` (the norm is clipped)."""
    # The cosine is scale-invariant: dividing by max|x| first keeps Σx² within float range (optax
    # gives cos 0 for entries ~1e20 in float32, where Σx² overflows, and NaN for ~1e-25).
    scale = _norm_scale(x, axes, keepdims=True)
    scaled = x / scale
    sum_sq = jnp.sum(jnp.square(scaled), axis=axes, keepdims=True)
    # Double where: √ has an infinite derivative at 0 (a zero vector); the jvp rule below is
    # differentiated for second derivatives.
    zero = sum_sq == 0
    norm = jnp.where(zero, 0, jnp.sqrt(jnp.where(zero, 1, sum_sq)))
    floor = min_norm / scale
    divisor = jnp.maximum(norm, floor)
    none = divisor == 0  # a zero vector with epsilon = 0: no direction
    unit = jnp.where(none, 0, scaled / jnp.where(none, 1, divisor))
    return unit, scale * divisor, norm < floor


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def _cos(p: jax.Array, t: jax.Array, min_norm: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    return jnp.sum(_direction(p, axes, min_norm)[0] * _direction(t, axes, min_norm)[0], axis=axes)


@_cos.defjvp
def _cos_jvp(axes, primals, tangents):
    # A hand-written derivative: autodiff through the scaling, clipping and wheres costs several
    # times the compiled size (and compile time) for the same numbers.
    (p, t, m), (dp, dt, dm) = primals, tangents
    u_p, n_p, clipped_p = _direction(p, axes, m)
    u_t, n_t, clipped_t = _direction(t, axes, m)
    cos = jnp.sum(u_p * u_t, axis=axes, keepdims=True)

    def side(u, other, n, clipped, dx):
        # d(x / ‖x‖) = (dx − u⟨u, dx⟩) / ‖x‖; d(x / m) = dx / m when clipped; 0 with no direction
        inverse = jnp.where(n > 0, 1 / jnp.where(n > 0, n, 1), 0)
        return jnp.sum((other - jnp.where(clipped, 0, cos) * u) * inverse * dx, axis=axes)

    # Each clipped norm divides the cosine by m: ∂cos/∂m = −cos/m per clipped side.
    clipped = clipped_p.astype(cos.dtype) + clipped_t.astype(cos.dtype)
    by_m = jnp.where(m > 0, -cos * clipped / jnp.where(m > 0, m, 1), 0)
    tangent = side(u_p, u_t, n_p, clipped_p, dp) + side(u_t, u_p, n_t, clipped_t, dt)
    return jnp.squeeze(cos, axes), tangent + jnp.squeeze(by_m, axes) * dm


def _cosine(fn, predictions, targets, epsilon, axis, where) -> jax.Array:
    predictions, targets = _checks.float_pair(fn, "predictions", predictions, "targets", targets)
    _checks.non_empty(fn, "predictions", predictions)
    axes = _axes(fn, axis, predictions.ndim)
    _checks.scalar(fn, "epsilon", epsilon)
    valid = _checks.hyperparameter_ok(fn, "epsilon", epsilon, low=0)
    _checks.not_nan(fn, "predictions", predictions)
    _checks.not_nan(fn, "targets", targets)
    if where is not None:
        where = _checks.real(fn, "where", where)
        _checks.mask_shape(fn, "where", where, predictions.shape)
        # Zero the inputs themselves (not the products): an inf or NaN left out by the mask then
        # never reaches the value or the gradient.
        predictions = jnp.where(where, predictions, 0)
        targets = jnp.where(where, targets, 0)
    dtype = predictions.dtype
    # epsilon bounds the squared norm (optax's convention): the norms are clipped at √epsilon.
    min_norm = jnp.sqrt(jnp.where(valid, jnp.asarray(epsilon, dtype), 0))
    cos = _cos(predictions, targets, min_norm, axes)
    return jnp.where(valid, cos, jnp.nan)


_COSINE_ARGS = """Args:
      predictions: floating array of vectors along `axis`, e.g. `(..., dim)`.
      targets: array of the same shape.
      epsilon: lower bound on the squared norms, a scalar ≥ 0 (default 0): each norm is
        `max(‖x‖, √epsilon)`. May be traced: a traced negative (or NaN) `epsilon` gives NaN,
        and `jaxloss.checked` raises.
      axis: the vector axis: an int, a tuple of ints or None (all axes). Default -1.
      where: optional boolean mask of `predictions.shape`; masked-out entries take no part (as if
        0, in both vectors)."""


def cosine_similarity(
    predictions: jax.Array,
    targets: jax.Array,
    *,
    epsilon: float = 0.0,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.Array | None = None,
) -> jax.Array:
    """Cosine of the angle between vectors: `⟨p, t⟩ / (max(‖p‖, √ε) · max(‖t‖, √ε))`.

    A zero vector (with `epsilon = 0`) has no direction: its cosine with anything is defined as 0
    (the mean of the cosine over all directions), with gradient 0 w.r.t. both vectors, where
    optax gives NaN and torch (`eps=1e-8`) a gradient ~1e8. With `epsilon > 0` the function is
    smooth there (value 0, gradient `t / (√ε ‖t‖)`), as optax's.

    {args}

    Returns:
      Array of `predictions.shape` without the `axis` axes, values in [-1, 1]; NaN where a
      vector has a NaN or ±inf entry (`jaxloss.checked` raises for NaN input).

    Example:
      >>> jaxloss.cosine_similarity(jnp.array([3.0, 4.0]), jnp.array([6.0, 8.0]))
      Array(1., dtype=float32)
      >>> jaxloss.cosine_similarity(jnp.zeros(2), jnp.array([1.0, 0.0]))  # a zero vector
      Array(0., dtype=float32)

    Matches `optax.cosine_similarity` (same `epsilon`, `axis` and `where`) wherever optax is
    finite, and `torch.nn.functional.cosine_similarity(p, t, dim, eps)` with `epsilon = eps²`.
    Unlike both, it is exact for float32 entries beyond ~1e19 or below ~1e-19, where `‖x‖²`
    over- or underflows (optax: 0 or NaN; torch: 0 or ~1e-17 for a cosine of 0.77).
    """
    return _cosine("cosine_similarity", predictions, targets, epsilon, axis, where)


def cosine_distance(
    predictions: jax.Array,
    targets: jax.Array,
    *,
    epsilon: float = 0.0,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.Array | None = None,
) -> jax.Array:
    """Cosine distance `1 − cosine_similarity(predictions, targets)`, in [0, 2].

    A zero vector (with `epsilon = 0`) is at distance 1 from everything, with gradient 0 (see
    `jaxloss.cosine_similarity`).

    {args}

    Returns:
      Array of `predictions.shape` without the `axis` axes.

    Example:
      >>> jaxloss.cosine_distance(jnp.array([1.0, 0.0]), jnp.array([-2.0, 0.0]))
      Array(2., dtype=float32)

    Matches `optax.cosine_distance` wherever optax is finite, and
    `1 − torch.nn.functional.cosine_similarity(p, t, dim, eps)` with `epsilon = eps²`.
    """
    return 1 - _cosine("cosine_distance", predictions, targets, epsilon, axis, where)


cosine_similarity.__doc__ = cosine_similarity.__doc__.format(args=_COSINE_ARGS)
cosine_distance.__doc__ = cosine_distance.__doc__.format(args=_COSINE_ARGS)
